"""Florence-2 (transformers' native ``Florence2ForConditionalGeneration``): captions, phrase
grounding, open-vocabulary detection and OCR, each asked for by its task token.

- caption: ``<CAPTION>`` (short) or ``<DETAILED_CAPTION>``;
- ground: ``<CAPTION_TO_PHRASE_GROUNDING>`` with one phrase per generation, so every box of the
  answer is that phrase's, labelled with the caller's own spelling;
- detect: ``<OPEN_VOCABULARY_DETECTION>`` once per vocabulary label (``<OD>`` names only the
  categories Florence-2 was trained on, which a vocabulary need not use), then class-wise NMS;
- ocr: ``<OCR>``.

Boxes are written as location tokens, 1000 bins along each side of the image (resized to the
model's square without cropping or padding); the processor's post-processing turns them into
pixels of the original image. Scores and thresholds: see :mod:`mmrag.models.grounding.generation`.
Checkpoints in the original remote-code format (``microsoft/Florence-2-*``) do not load; their
transformers conversions (``florence-community/Florence-2-*``) do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from mmrag.models.base import Tool
from mmrag.models.grounding.adapter import clean_text, phrase_lists, unique_texts
from mmrag.models.grounding.boxes import clip_to_image
from mmrag.models.grounding.generation import GeneratingAdapter, Generation
from mmrag.models.grounding.selection import has_area, rank_interleaved, suppress_overlaps
from mmrag.models.vision import Box, CaptionDetail

CAPTION_TASKS: dict[CaptionDetail, str] = {"short": "<CAPTION>", "detailed": "<DETAILED_CAPTION>"}
GROUND_TASK = "<CAPTION_TO_PHRASE_GROUNDING>"
DETECT_TASK = "<OPEN_VOCABULARY_DETECTION>"
OCR_TASK = "<OCR>"
# A box is four location tokens, after a label of a few tokens.
TOKENS_PER_BOX = 8


class Florence2Adapter(GeneratingAdapter):
    tools: ClassVar[frozenset[Tool]] = frozenset({"caption", "ground", "detect", "ocr"})

    def _load_model(self, directory: Path, dtype: Any) -> Any:
        from transformers import Florence2ForConditionalGeneration

        return Florence2ForConditionalGeneration.from_pretrained(directory, dtype=dtype)

    # -- tools -----------------------------------------------------------------------------

    def caption(self, images: Sequence[Image.Image], detail: CaptionDetail = "short") -> list[str]:
        self._require("caption")
        return self._texts(images, CAPTION_TASKS[detail])

    def ocr(self, images: Sequence[Image.Image]) -> list[str]:
        self._require("ocr")
        return self._texts(images, OCR_TASK)

    def ground(
        self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
    ) -> list[list[Box]]:
        self._require("ground")
        texts = phrase_lists(images, phrases)
        found = self._boxes_per_text(images, texts, GROUND_TASK)
        return [rank_interleaved(per_phrase, self.options.max_boxes) for per_phrase in found]

    def detect(self, images: Sequence[Image.Image], vocabulary: Sequence[str]) -> list[list[Box]]:
        self._require("detect")
        labels = unique_texts(vocabulary, "label")
        found = self._boxes_per_text(images, [labels] * len(images), DETECT_TASK)
        return [
            suppress_overlaps([box for boxes in per_label for box in boxes], self.options.max_boxes)
            for per_label in found
        ]

    # -- generation and parsing ------------------------------------------------------------

    def _texts(self, images: Sequence[Image.Image], task: str) -> list[str]:
        generations = self.generate(images, [task] * len(images), self.options.max_new_tokens)
        return [
            str(self.parse(generation, task, image.size))
            for generation, image in zip(generations, images, strict=True)
        ]

    def _boxes_per_text(
        self, images: Sequence[Image.Image], texts: Sequence[Sequence[str]], task: str
    ) -> list[list[list[Box]]]:
        """For each image, for each of its texts, the boxes one generation found for it."""
        pairs = [(index, text) for index, group in enumerate(texts) for text in group]
        if not pairs:
            return [[] for _ in images]
        self.load()
        generations = self.generate(
            [images[index] for index, _ in pairs],
            [task + clean_text(text) for _, text in pairs],
            min(self.box_budget(TOKENS_PER_BOX), self._longest_answer()),
        )
        found: list[list[list[Box]]] = [[] for _ in images]
        for (index, text), generation in zip(pairs, generations, strict=True):
            parsed = self.parse(generation, task, images[index].size)
            found[index].append(self.boxes(parsed, text, generation.score, images[index].size))
        return found

    def parse(self, generation: Generation, task: str, size: tuple[int, int]) -> Any:
        """The processor's reading of a generation for ``task``: a text, or boxes (pixels of an
        image of ``size``) with labels."""
        text = self.processor.tokenizer.decode(generation.tokens, skip_special_tokens=False)
        parsed = self.processor.post_process_generation(text, task=task, image_size=size)
        return parsed[task]

    def boxes(
        self, parsed: dict[str, Any], label: str, score: float | None, size: tuple[int, int]
    ) -> list[Box]:
        """A parsed answer's boxes (and the bounding boxes of its polygons, which open-vocabulary
        detection may write instead), all labelled ``label``, in the image."""
        corners = [list(box) for box in parsed.get("bboxes", [])]
        for polygons in parsed.get("polygons", []):
            points = torch.tensor([value for polygon in polygons for value in polygon]).view(-1, 2)
            if points.numel():
                corners.append(
                    [*points.min(dim=0).values.tolist(), *points.max(dim=0).values.tolist()]
                )
        if not corners:
            return []
        pixels = clip_to_image(torch.tensor(corners, dtype=torch.float32), *size)
        return [
            Box(label, score if score is not None else 0.0, (x1, y1, x2, y2))
            for (x1, y1, x2, y2) in pixels[has_area(pixels)].tolist()
        ]

    def _longest_answer(self) -> int:
        # The decoder's learned positions end here; generating past them fails.
        return int(self.model.config.text_config.max_position_embeddings) - 1
