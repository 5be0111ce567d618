"""Grounding DINO: prompts and their phrase spans, and a tiny checkpoint end to end."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from models.grounding.box_checks import MAX_BOXES, TINY, assert_boxes, scene_images

from mmrag.errors import InvalidInput, ModelUnavailable
from mmrag.models.grounding.grounding_dino import (
    GroundingDinoAdapter,
    build_prompt,
    pack_columns,
    prompt_piece,
    token_masks,
)
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import ToolNotServed, VisionModel

PHRASES = [["The Blue  triangle", "a red circle"], ["square"]]
VOCABULARY = ["circle", "square", "triangle"]


def test_a_prompt_joins_phrases_and_knows_where_each_lies() -> None:
    pieces = [prompt_piece(text) for text in ["The Blue  triangle", "St. Ives", "cat"]]
    prompt = build_prompt(3, [0, 1, 2], pieces)
    assert prompt.text == "the blue triangle. st ives. cat."
    assert [prompt.text[start:end] for start, end in prompt.spans] == [
        "the blue triangle",
        "st ives",
        "cat",
    ]
    assert (prompt.image, prompt.columns) == (3, [0, 1, 2])
    partial = build_prompt(0, [2], pieces)
    assert (partial.text, partial.spans) == ("cat.", [(0, 3)])


@pytest.mark.parametrize(
    ("counts", "budget", "groups"),
    [
        ([1, 1, 1], 4, [[0, 1], [2]]),  # each text takes its tokens and a full stop
        ([3, 5, 2, 10], 8, [[0], [1], [2], [3]]),
        ([1, 2, 1], 10, [[0, 1, 2]]),
        ([], 10, []),
    ],
)
def test_texts_are_packed_into_prompts_that_fit(
    counts: list[int], budget: int, groups: list[list[int]]
) -> None:
    assert pack_columns(counts, budget) == groups


def test_tokens_belong_to_the_phrase_whose_characters_they_cover() -> None:
    # "[CLS] the blue. cat . [SEP] [PAD]" for the prompt "the blue. cat."
    offsets = [(0, 0), (0, 3), (4, 8), (8, 9), (10, 13), (13, 14), (0, 0), (0, 0)]
    masks = token_masks(offsets, [(0, 8), (10, 13)], length=8)
    assert masks.int().tolist() == [[0, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0]]


def test_grounding_labels_only_the_asked_phrases(
    tiny_detector: Callable[[str], VisionModel],
) -> None:
    model = tiny_detector("grounding-dino")
    assert isinstance(model, GroundingDinoAdapter)
    images = scene_images()
    found = model.ground(images, PHRASES)
    assert_boxes(found, images, PHRASES, MAX_BOXES)
    assert all(found), "random weights score every box above a threshold of 0"


def test_detection_labels_only_the_vocabulary(tiny_detector: Callable[[str], VisionModel]) -> None:
    model = tiny_detector("grounding-dino")
    images = scene_images()
    found = model.detect(images, VOCABULARY)
    assert_boxes(found, images, [VOCABULARY] * len(images), MAX_BOXES)
    assert all(found)


def test_phrases_beyond_one_prompt_spread_over_rows(
    tiny_detector: Callable[[str], VisionModel],
) -> None:
    model = tiny_detector("grounding-dino")
    assert isinstance(model, GroundingDinoAdapter)
    # The tiny model reads 32 tokens a prompt; these need several.
    phrases = [f"the {colour} {kind}" for colour in ("red", "green", "blue") for kind in VOCABULARY]
    images = scene_images()[:1]
    prompts = model.prompts([phrases])
    assert len(prompts) > 1
    assert sorted(column for prompt in prompts for column in prompt.columns) == list(range(9))
    (scored,) = model.score(images, [phrases])
    queries = model.model.config.num_queries
    assert scored.boxes.shape == (queries * len(prompts), 4)
    assert scored.scores.shape == (queries * len(prompts), len(phrases))
    # A row scores only its own phrases.
    for row, prompt in enumerate(prompts):
        others = [column for column in range(9) if column not in prompt.columns]
        assert not scored.scores[row * queries : (row + 1) * queries, others].any()
    assert_boxes(model.ground(images, [phrases]), images, [phrases], MAX_BOXES)


def test_requests_are_checked(tiny_detector: Callable[[str], VisionModel]) -> None:
    model = tiny_detector("grounding-dino")
    images = scene_images()
    assert model.ground(images, [[], []]) == [[], []]
    assert model.ground([], []) == []
    with pytest.raises(InvalidInput):
        model.ground(images, [["a circle"]])
    with pytest.raises(InvalidInput):
        model.ground(images, [["a circle"], ["  "]])
    with pytest.raises(InvalidInput):
        model.detect(images, "circle")
    with pytest.raises(ToolNotServed):
        model.caption(images)
    with pytest.raises(ToolNotServed):
        model.answer(images, ["what?", "what?"])
    with pytest.raises(ToolNotServed):
        model.ocr(images)


def test_a_directory_without_weights_is_unavailable(
    tiny_detector_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    shutil.copy(tiny_detector_dir("grounding-dino") / "config.json", tmp_path)
    model = create_vision_model(f"local:{tmp_path}", TINY)
    assert isinstance(model, GroundingDinoAdapter)
    with pytest.raises(ModelUnavailable, match="cannot load"):
        model.load()
    assert not model.loaded
