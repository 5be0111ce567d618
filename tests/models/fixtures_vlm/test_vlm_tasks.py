"""The fixture VLM's language: answers follow the scene's ground truth exactly."""

from __future__ import annotations

import random

import pytest
from models.fixtures_vlm.vlm_oracle import true_answer

from mmrag.models.fixtures.shapes import (
    COLOURS,
    KINDS,
    Shape,
    ShapeScene,
    generate_world,
)
from mmrag.models.fixtures.vlm_tasks import (
    NONE_ANSWER,
    QUESTION_TASKS,
    TASKS,
    Task,
    askable_colours,
    askable_kinds,
    colour_answer,
    count_answer,
    detailed_caption,
    evaluation_examples,
    exists_answer,
    sample_example,
    shape_answer,
    short_caption,
)
from mmrag.models.vlm.prompts import CAPTION_PROMPTS

ASKING_ABOUT_SOMETHING: tuple[Task, ...] = ("colour", "shape", "exists")

# Left to right: a red square, a blue square, a green circle (positions by box centre).
SCENE = ShapeScene(
    seed=0,
    size=64,
    background=(220, 220, 220),
    shapes=(
        Shape("circle", "green", (44, 10, 60, 26)),
        Shape("square", "blue", (24, 30, 40, 46)),
        Shape("square", "red", (2, 2, 18, 18)),
    ),
)


def test_captions_list_every_shape_left_to_right() -> None:
    assert short_caption(SCENE) == "a red square, a blue square and a green circle"
    assert detailed_caption(SCENE) == (
        "a red square on the left, a blue square in the middle and a green circle on the right"
    )


def test_colour_answers_one_or_none_and_refuses_several() -> None:
    assert colour_answer(SCENE, "circle") == "green"
    assert colour_answer(SCENE, "triangle") == NONE_ANSWER
    with pytest.raises(ValueError, match="several"):
        colour_answer(SCENE, "square")
    assert askable_kinds(SCENE) == ["circle", "triangle"]


def test_shape_answers_one_or_none() -> None:
    assert shape_answer(SCENE, "blue") == "square"
    assert shape_answer(SCENE, "yellow") == NONE_ANSWER
    assert askable_colours(SCENE) == list(COLOURS)


def test_questions_never_name_several_shapes() -> None:
    rng = random.Random(5)
    for _ in range(50):
        for task in ASKING_ABOUT_SOMETHING[:2]:
            example = sample_example(rng, SCENE, task, present_fraction=0.5)
            # Two squares: "the square" would name neither.
            assert "square" not in example.prompt


def test_count_is_a_digit_and_exists_is_yes_or_no() -> None:
    assert count_answer(SCENE) == "3"
    assert exists_answer(SCENE, "red", "square") == "yes"
    assert exists_answer(SCENE, "red", "circle") == "no"


def test_caption_examples_use_the_adapters_prompts() -> None:
    rng = random.Random(0)
    for detail in ("short", "detailed"):
        example = sample_example(rng, SCENE, detail, present_fraction=1.0)
        assert example.prompt == CAPTION_PROMPTS[detail]


@pytest.mark.parametrize("task", QUESTION_TASKS)
def test_sampled_questions_are_answered_by_the_ground_truth(task: Task) -> None:
    rng = random.Random(1)
    for scene in generate_world(50, seed=100):
        example = sample_example(rng, scene, task, present_fraction=0.5)
        assert example.task == task
        assert example.answer == true_answer(scene, example.prompt)


def test_present_fraction_one_asks_only_about_what_is_there() -> None:
    rng = random.Random(2)
    for scene in generate_world(30, seed=200):
        if len(askable_kinds(scene)) < len(KINDS) or len(askable_colours(scene)) < len(COLOURS):
            continue  # a scene with two of a kind may have no other to ask about
        for task in ASKING_ABOUT_SOMETHING:
            example = sample_example(rng, scene, task, present_fraction=1.0)
            assert example.answer not in (NONE_ANSWER, "no")


def test_evaluation_battery_asks_about_what_is_there_and_one_thing_that_is_not() -> None:
    examples = evaluation_examples(SCENE, random.Random(4))
    by_task = {task: [e.answer for e in examples if e.task == task] for task in TASKS}
    assert by_task["short"] == [short_caption(SCENE)]
    assert by_task["detailed"] == [detailed_caption(SCENE)]
    # The circle, then the absent triangle: "the square" would name two shapes.
    assert by_task["colour"] == ["green", NONE_ANSWER]
    # Red, green and blue are there; yellow is the one absent colour.
    assert sorted(by_task["shape"]) == sorted(["square", "circle", "square", NONE_ANSWER])
    assert by_task["count"] == ["3"]
    # Every shape present, and as many absent pairs.
    assert sorted(by_task["exists"]) == ["no"] * 3 + ["yes"] * 3
    only_kinds = ShapeScene(0, 64, (220, 220, 220), SCENE.shapes[:1])
    colour_questions = [
        e for e in evaluation_examples(only_kinds, random.Random(5)) if e.task == "colour"
    ]
    assert [e.answer for e in colour_questions] == ["green", NONE_ANSWER]
