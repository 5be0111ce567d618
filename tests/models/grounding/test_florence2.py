"""Florence-2: a tiny checkpoint end to end, and canned answers parsed into original pixels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from models.grounding.box_checks import MAX_BOXES, assert_boxes, canned_generation, scene_images

from mmrag.errors import InvalidInput
from mmrag.models.vision import Box, ToolNotServed, VisionModel
from mmrag.models.vlm.florence2 import Florence2Adapter

PHRASES = [["The Blue triangle"], ["a red circle", "square"]]
VOCABULARY = ["circle", "square", "triangle"]


def florence(tiny_detector: Callable[[str], VisionModel]) -> Florence2Adapter:
    model = tiny_detector("florence2")
    assert isinstance(model, Florence2Adapter)
    return model


def answering(
    model: Florence2Adapter, answers: Sequence[str], probabilities: Sequence[float]
) -> Callable[..., Any]:
    """A forward pass whose rows write ``answers`` (texts with location tokens)."""
    tokenizer = model.processor.tokenizer

    def forward(inputs: Any, max_new_tokens: int, stop_ids: set[int]) -> Any:
        assert inputs["input_ids"].shape[0] == len(answers)
        ids = [tokenizer(answer, add_special_tokens=False)["input_ids"] for answer in answers]
        start = torch.full((len(answers), 1), model.model.config.text_config.decoder_start_token_id)
        return canned_generation(start, ids, probabilities, len(tokenizer), tokenizer.pad_token_id)

    return forward


def described(found: list[list[Box]]) -> list[list[tuple[str, float, tuple[float, ...]]]]:
    return [[(box.label, round(box.score, 4), box.box) for box in boxes] for boxes in found]


def test_the_tiny_checkpoint_serves_its_four_tools(
    tiny_detector: Callable[[str], VisionModel],
) -> None:
    model = florence(tiny_detector)
    images = scene_images()
    for texts in (model.caption(images), model.caption(images, "detailed"), model.ocr(images)):
        assert len(texts) == len(images)
        assert all(isinstance(text, str) for text in texts)
    assert_boxes(model.ground(images, PHRASES), images, PHRASES, MAX_BOXES)
    detected = model.detect(images, VOCABULARY)
    assert_boxes(detected, images, [VOCABULARY] * len(images), MAX_BOXES)
    with pytest.raises(ToolNotServed):
        model.answer(images, ["what?", "what?"])
    with pytest.raises(InvalidInput):
        model.ground(images, [["a circle"]])


def test_grounded_boxes_are_pixels_of_each_image_labelled_with_the_asked_phrase(
    tiny_detector: Callable[[str], VisionModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = florence(tiny_detector)
    answers = [
        # Image 0 (200 x 130): bins of 1/1000 of each side, at their centres, truncated.
        "the blue triangle<loc_100><loc_200><loc_500><loc_999></s>",
        # Image 1 (96 x 150): a second box with no width is no box.
        "a red circle<loc_0><loc_0><loc_999><loc_999><loc_500><loc_500><loc_500><loc_600></s>",
        "</s>",  # nothing found for "square"
    ]
    monkeypatch.setattr(model, "_forward", answering(model, answers, [0.75, 0.5, 0.9]))
    found = model.ground(scene_images(), PHRASES)
    assert described(found) == [
        [("The Blue triangle", 0.75, (20.0, 26.0, 100.0, 129.0))],
        [("a red circle", 0.5, (0.0, 0.0, 95.0, 149.0))],
    ]


def test_detection_asks_each_label_and_suppresses_overlaps(
    tiny_detector: Callable[[str], VisionModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = florence(tiny_detector)
    answers = [
        # Two overlapping circles: one survives NMS.
        "circle<loc_0><loc_0><loc_500><loc_500>circle<loc_10><loc_10><loc_490><loc_490></s>",
        # A polygon instead of a box: its bounding box.
        "square<poly><loc_600><loc_600><loc_900><loc_600><loc_900><loc_900><loc_600><loc_900>"
        "</poly></s>",
    ]
    monkeypatch.setattr(model, "_forward", answering(model, answers, [0.6, 0.9]))
    (wide, _) = scene_images()
    found = model.detect([wide], ["circle", "square"])
    assert described(found) == [
        [("square", 0.9, (120.0, 78.0, 180.0, 117.0)), ("circle", 0.6, (0.0, 0.0, 100.0, 65.0))]
    ]


def test_captions_and_text_come_without_markup(
    tiny_detector: Callable[[str], VisionModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = florence(tiny_detector)
    answers = ["<s>a red circle</s>", "<s>the blue triangle</s><pad>"]
    monkeypatch.setattr(model, "_forward", answering(model, answers, [0.5, 0.5]))
    assert model.caption(scene_images()) == ["a red circle", "the blue triangle"]
    assert model.ocr(scene_images()) == ["a red circle", "the blue triangle"]
