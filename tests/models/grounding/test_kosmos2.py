"""Kosmos-2: a tiny checkpoint end to end, and canned answers back through resize and crop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from models.grounding.box_checks import MAX_BOXES, assert_boxes, canned_generation, scene_images

from mmrag.models.vision import ToolNotServed, VisionModel
from mmrag.models.vlm.kosmos2 import Kosmos2Adapter

PHRASES = [["The Blue triangle"], ["a red circle", "square"]]


def kosmos(tiny_detector: Callable[[str], VisionModel]) -> Kosmos2Adapter:
    model = tiny_detector("kosmos-2")
    assert isinstance(model, Kosmos2Adapter)
    return model


def answering(
    model: Kosmos2Adapter, answers: Sequence[str], probabilities: Sequence[float]
) -> Callable[..., Any]:
    """A forward pass whose rows continue their prompts with ``answers``."""
    tokenizer = model.processor.tokenizer

    def forward(inputs: Any, max_new_tokens: int, stop_ids: set[int]) -> Any:
        prompts = inputs["input_ids"]
        assert prompts.shape[0] == len(answers)
        ids = [tokenizer(answer, add_special_tokens=False)["input_ids"] for answer in answers]
        return canned_generation(
            prompts, ids, probabilities, len(tokenizer), tokenizer.pad_token_id
        )

    return forward


def test_the_tiny_checkpoint_captions_and_grounds(
    tiny_detector: Callable[[str], VisionModel],
) -> None:
    model = kosmos(tiny_detector)
    images = scene_images()
    for captions in (model.caption(images), model.caption(images, "detailed")):
        assert len(captions) == len(images)
        assert all(isinstance(caption, str) for caption in captions)
    assert_boxes(model.ground(images, PHRASES), images, PHRASES, MAX_BOXES)
    assert model.ground(images, [[], []]) == [[], []]
    with pytest.raises(ToolNotServed):
        model.detect(images, ["circle"])
    with pytest.raises(ToolNotServed):
        model.ocr(images)


def test_grounded_boxes_go_back_through_the_crop_to_original_pixels(
    tiny_detector: Callable[[str], VisionModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = kosmos(tiny_detector)
    whole = "<object><patch_index_0000><patch_index_1023></object>"
    answers = [whole, whole, "</s>"]  # nothing for "square"
    monkeypatch.setattr(model, "_forward", answering(model, answers, [0.5, 0.8, 0.9]))
    found = model.ground(scene_images(), PHRASES)
    # Cells 0 and 1023 are the corners of a 32 x 32 grid: the box spans their centres,
    # 1/64 to 63/64 of the model's 32 px input (0.5 to 31.5 px).
    # Image 0, 200 x 130: resized to 49 x 32, columns 8-40 kept.
    wide = (8.5 * 200 / 49, 0.5 * 130 / 32, 39.5 * 200 / 49, 31.5 * 130 / 32)
    # Image 1, 96 x 150: resized to 32 x 50, rows 9-41 kept.
    tall = (0.5 * 96 / 32, 9.5 * 150 / 50, 31.5 * 96 / 32, 40.5 * 150 / 50)
    assert [[(box.label, round(box.score, 4)) for box in boxes] for boxes in found] == [
        [("The Blue triangle", 0.5)],
        [("a red circle", 0.8)],
    ]
    assert found[0][0].box == pytest.approx(wide, abs=1e-3)
    assert found[1][0].box == pytest.approx(tall, abs=1e-3)


def test_captions_lose_the_prompt_and_the_entity_markup(
    tiny_detector: Callable[[str], VisionModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = kosmos(tiny_detector)
    answers = [
        "<phrase> a red circle</phrase><object><patch_index_0001><patch_index_0002></object>.</s>",
        " two squares.</s>",
    ]
    monkeypatch.setattr(model, "_forward", answering(model, answers, [0.5, 0.5]))
    assert model.caption(scene_images()) == ["a red circle.", "two squares."]
