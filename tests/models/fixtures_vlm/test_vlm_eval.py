"""The VLM evaluation itself, against stand-in models whose answers are known."""

from __future__ import annotations

import pytest
from models.fixtures_vlm.vlm_oracle import BlindVlm, OracleVlm

from mmrag.models.fixtures.evaluate_vlm import (
    evaluate_vlm,
    normalise_answer,
    parse_caption,
    score_caption,
)
from mmrag.models.fixtures.shapes import Mention, Shape, ShapeScene, generate_world

SCENE = ShapeScene(
    seed=0,
    size=64,
    background=(220, 220, 220),
    shapes=(Shape("square", "red", (2, 2, 18, 18)), Shape("circle", "green", (44, 10, 60, 26))),
)


def test_parse_caption_reads_the_world_grammar() -> None:
    assert parse_caption("a red square") == (Mention("red", "square"),)
    assert parse_caption("a red square on the left and a green circle") == (
        Mention("red", "square", "left"),
        Mention("green", "circle"),
    )
    three = parse_caption("a red square, a blue circle and a green triangle")
    assert three is not None
    assert len(three) == 3


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a red square and",
        "a red square, a green circle",  # the last separator must be "and"
        "a red square and a green circle and a blue circle",
        "a purple square",
        "two shapes: a red square",
        "a red square.",
    ],
)
def test_parse_caption_refuses_anything_else(text: str) -> None:
    assert parse_caption(text) is None


def test_captions_must_name_every_shape_and_nothing_else() -> None:
    assert score_caption("a red square and a green circle", SCENE) == (True, False)
    assert score_caption("a green circle and a red square", SCENE) == (True, False)
    placed = "a red square on the left and a green circle on the right"
    assert score_caption(placed, SCENE) == (True, True)
    swapped = "a red square on the right and a green circle on the left"
    assert score_caption(swapped, SCENE) == (True, False)
    assert score_caption("a red square", SCENE) == (False, False)
    assert score_caption("a red square and a red square", SCENE) == (False, False)
    assert score_caption("a red square, a green circle and a blue circle", SCENE) == (False, False)
    assert score_caption("a blue square and a green circle", SCENE) == (False, False)


def test_answers_are_compared_without_case_or_full_stop() -> None:
    assert normalise_answer(" Red and  blue. ") == "red and blue"


def test_an_oracle_scores_one_in_batches_of_the_size_asked() -> None:
    scenes = generate_world(12, seed=300)
    oracle = OracleVlm(scenes, shout=True)
    report = evaluate_vlm(oracle, scenes, batch_size=5)
    assert report.caption_accuracy == 1.0
    assert report.position_accuracy == 1.0
    assert report.vqa_accuracy == 1.0
    assert max(oracle.batches) == 5
    summary = report.as_dict()
    assert summary["failures"] == []
    assert summary["vqa_accuracy_by_type"] == {
        "colour": 1.0,
        "shape": 1.0,
        "count": 1.0,
        "exists": 1.0,
    }


def test_a_blind_model_scores_low() -> None:
    scenes = generate_world(40, seed=400)
    report = evaluate_vlm(BlindVlm(), scenes)
    assert report.caption_accuracy < 0.2
    assert report.accuracy("colour") < 0.3
    assert report.accuracy("count") == 0.0
    assert report.as_dict()["failures"]


def test_no_scenes_raise() -> None:
    with pytest.raises(ValueError, match="at least one scene"):
        evaluate_vlm(BlindVlm(), [])
