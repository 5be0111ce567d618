"""The shape of every model that looks at images: captioning, VQA, grounding, detection, OCR.

Adapters take batches (one forward pass for many requests: the workers micro-batch) and
return plain data. Boxes are ``(x1, y1, x2, y2)`` in pixels of the image as passed in, which
is the original image: adapters undo their own resizing and padding.

A tool an adapter does not declare in ``tools`` raises :class:`ToolNotServed`; callers check
``serves(tool)`` first to refuse a request before any image is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from mmrag.models.base import Device, InferenceModel, Tool
from mmrag.models.engine.options import EngineOptions
from mmrag.models.spec import ModelSpec

CaptionDetail = Literal["short", "detailed"]
BoxXYXY = tuple[float, float, float, float]


class ToolNotServed(Exception):
    """Raised by an adapter asked for a tool it does not serve (a caller's bug: check first)."""


@dataclass(frozen=True)
class Answer:
    text: str
    # The model's own confidence (mean token probability, or a classifier score); None where
    # the model gives none.
    score: float | None = None


@dataclass(frozen=True)
class Box:
    label: str
    score: float
    box: BoxXYXY


@dataclass(frozen=True)
class VisionOptions:
    device: Device = "auto"
    cpu_threads: int = 0  # 0: one per usable core
    cache_dir: Path | None = None  # downloaded checkpoints and fixture models
    max_new_tokens: int = 48  # generation cap for captions and answers
    box_threshold: float = 0.3  # detection score below which boxes are dropped
    max_boxes: int = 100  # per image, after non-maximum suppression
    # How openai: specs (models served by an inference engine) reach their engine; they
    # need it (workers/executor.py builds it from the settings, where the defaults are).
    engine: EngineOptions | None = None


class VisionModel(InferenceModel):
    """Base of the VLM and grounding adapters. Override the methods of the tools served."""

    def __init__(
        self, spec: ModelSpec, options: VisionOptions = VisionOptions(), source: Path | None = None
    ) -> None:
        super().__init__(spec, options.device)
        self.options = options
        # Where the weights are: a local directory (local:, fixture:, or an hf: snapshot).
        # None for hf: specs until load() resolves the snapshot.
        self.source = source

    def caption(self, images: Sequence[Image.Image], detail: CaptionDetail = "short") -> list[str]:
        raise ToolNotServed(self.unserved_reason("caption"))

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Answer]:
        """One question per image (repeat an image to ask it several)."""
        raise ToolNotServed(self.unserved_reason("vqa"))

    def ground(
        self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
    ) -> list[list[Box]]:
        """Boxes for each image's phrases, labelled with the phrase, best first."""
        raise ToolNotServed(self.unserved_reason("ground"))

    def detect(self, images: Sequence[Image.Image], vocabulary: Sequence[str]) -> list[list[Box]]:
        """Every instance of the vocabulary's labels in each image (open-vocabulary)."""
        raise ToolNotServed(self.unserved_reason("detect"))

    def ocr(self, images: Sequence[Image.Image]) -> list[str]:
        raise ToolNotServed(self.unserved_reason("ocr"))

    def unserved_reason(self, tool: Tool) -> str:
        served = ", ".join(sorted(self.tools)) or "nothing"
        return f"{self.spec} does not serve {tool} (it serves {served})"


def clip_box(box: Sequence[float], width: int, height: int) -> BoxXYXY:
    """A box clamped into the image, in float pixels."""
    x1, y1, x2, y2 = (float(value) for value in box)
    return (
        min(max(x1, 0.0), float(width)),
        min(max(y1, 0.0), float(height)),
        min(max(x2, 0.0), float(width)),
        min(max(y2, 0.0), float(height)),
    )
