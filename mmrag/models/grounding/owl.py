"""OWLv2 and OWL-ViT: phrase grounding and open-vocabulary detection.

Every image patch predicts one box and a score for each text query; the queries are the
caller's phrases (ground) or vocabulary (detect), as given, with no prompt template. A query's
score for a box is the sigmoid of its logit.

Where boxes are relative to differs by family, and the adapter reads it from the checkpoint's
image processor rather than trusting post-processing: OWLv2 pads each image to a square (bottom
and right) before resizing, so its boxes are fractions of that square, whose side is
``max(width, height)`` of the original; OWL-ViT resizes (and centre-crops) without padding.

Phrase grounding expects an answer for each phrase asked: a phrase with no box above
``box_threshold`` still gets its best box if that scores at least :data:`GROUND_FLOOR`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mmrag.models.grounding.boxes import ResizeCrop, cxcywh_to_xyxy, padded_square_to_pixels
from mmrag.models.grounding.scoring import ScoringDetector
from mmrag.models.grounding.selection import Scored
from mmrag.models.transformers_base import rgb

# OWL's scores run low: correct boxes of the released checkpoints often score 0.1-0.3, and 0.1
# is the threshold their own examples use. Below it a "best box" is usually background.
GROUND_FLOOR = 0.1


class OwlAdapter(ScoringDetector):
    ground_floor = GROUND_FLOOR

    def _load_model(self, directory: Path, dtype: Any) -> Any:
        from transformers import AutoModelForZeroShotObjectDetection

        return AutoModelForZeroShotObjectDetection.from_pretrained(directory, dtype=dtype)

    # -- one batch -------------------------------------------------------------------------

    def score(self, images: Sequence[Image.Image], texts: Sequence[Sequence[str]]) -> list[Scored]:
        """Every patch's box in each image, scored against each of that image's texts."""
        if not images:
            return []
        self.load()
        if not any(texts):
            return [Scored(torch.zeros(0, 4), torch.zeros(0, 0)) for _ in images]
        return self.postprocess(self._forward(self.preprocess(images, texts)), images, texts)

    def preprocess(self, images: Sequence[Image.Image], texts: Sequence[Sequence[str]]) -> Any:
        """Pixels and queries; an image with fewer queries than another is padded with blank
        ones (its scores for them are dropped in postprocessing)."""
        # A query longer than the text model's positions is cut; the length is set here rather
        # than left to the tokenizer, whose own limit a checkpoint may leave unset.
        length = int(self.model.config.text_config.max_position_embeddings)
        queries = [list(group) if group else [" "] for group in texts]
        inputs = self.processor(
            images=rgb(images),
            text=queries,
            return_tensors="pt",
            padding="max_length",
            truncation=True,
            max_length=length,
        )
        return inputs.to(self.device, dtype=self.dtype)

    def _forward(self, inputs: Any) -> Any:
        with torch.inference_mode():
            return self.model(**inputs)

    def postprocess(
        self, outputs: Any, images: Sequence[Image.Image], texts: Sequence[Sequence[str]]
    ) -> list[Scored]:
        probabilities = outputs.logits.float().sigmoid().cpu()  # images x patches x queries
        corners = cxcywh_to_xyxy(outputs.pred_boxes.float().cpu())
        return [
            Scored(
                self.to_pixels(corners[index], image.size),
                probabilities[index, :, : len(texts[index])],
            )
            for index, image in enumerate(images)
        ]

    def to_pixels(self, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Boxes in ``[0, 1]`` of the model's input as pixel boxes of the original image."""
        width, height = size
        image_processor = self.processor.image_processor
        if getattr(image_processor, "do_pad", False):
            return padded_square_to_pixels(boxes, width, height)
        return ResizeCrop.of(image_processor, width, height).to_pixels(boxes)
