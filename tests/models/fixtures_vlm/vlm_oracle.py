"""A stand-in VLM that knows each scene's ground truth, for testing the VLM evaluation."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from mmrag.models.fixtures.shapes import COLOURS, KINDS, ShapeScene
from mmrag.models.fixtures.vlm_tasks import (
    colour_answer,
    count_answer,
    detailed_caption,
    exists_answer,
    shape_answer,
    short_caption,
)
from mmrag.models.vision import Answer, CaptionDetail


def true_answer(scene: ShapeScene, question: str) -> str:
    """The expected answer, recomputed from the question's words alone."""
    words = question.lower().removesuffix("?").removesuffix(".").split()
    colour = next((c for c in COLOURS if c in words), None)
    kind = next((k for k in KINDS if k in words), None)
    if colour is not None and kind is not None:
        return exists_answer(scene, colour, kind)
    if kind is not None:
        return colour_answer(scene, kind)
    if colour is not None:
        return shape_answer(scene, colour)
    return count_answer(scene)


class OracleVlm:
    """Answers from the ground truth of the scene each image shows; ``shout`` upper-cases
    answers and adds a full stop (which scoring must forgive)."""

    def __init__(self, scenes: Sequence[ShapeScene], shout: bool = False) -> None:
        self._scenes = {scene.image.tobytes(): scene for scene in scenes}
        self._shout = shout
        self.batches: list[int] = []

    def caption(self, images: Sequence[Image.Image], detail: CaptionDetail = "short") -> list[str]:
        self.batches.append(len(images))
        scenes = [self._scenes[image.tobytes()] for image in images]
        return [short_caption(s) if detail == "short" else detailed_caption(s) for s in scenes]

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Answer]:
        self.batches.append(len(images))
        answers = []
        for image, question in zip(images, questions, strict=True):
            text = true_answer(self._scenes[image.tobytes()], question)
            answers.append(Answer(f"{text.upper()}." if self._shout else text, 0.9))
        return answers


class BlindVlm:
    """Says the same whatever the image: what a language model alone would."""

    def caption(self, images: Sequence[Image.Image], detail: CaptionDetail = "short") -> list[str]:
        return ["a red circle"] * len(images)

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Answer]:
        return [Answer("red", None)] * len(images)
