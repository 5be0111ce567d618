"""Kosmos-2: grounded captions and phrase grounding.

Kosmos-2 links the phrases of what it writes to boxes, written as two patch-index tokens (the
top-left and bottom-right cells of a 32 x 32 grid over its input):

- caption: ``<grounding>An image of`` (short) or ``<grounding>Describe this image in detail:``;
  the caption is the text with the entity markup and the prompt's own words taken out;
- ground: ``<grounding><phrase> {phrase}</phrase>``, one phrase per generation, which stops
  once the model has closed the phrase's ``<object>``; its boxes are labelled with the caller's
  phrase.

The processor's entity post-processing gives boxes in ``[0, 1]`` of the model's input, which are
mapped back through the image processor's resize and crop to pixels of the original image.
Scores and thresholds: see :mod:`mmrag.models.grounding.generation`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from mmrag.models.base import Tool
from mmrag.models.grounding.adapter import clean_text, phrase_lists
from mmrag.models.grounding.boxes import ResizeCrop
from mmrag.models.grounding.generation import GeneratingAdapter, Generation
from mmrag.models.grounding.selection import has_area, rank_interleaved
from mmrag.models.vision import Box, CaptionDetail

CAPTION_PROMPTS: dict[CaptionDetail, str] = {
    "short": "<grounding>An image of",
    "detailed": "<grounding>Describe this image in detail:",
}
PHRASE_PROMPT = "<grounding><phrase> {phrase}</phrase>"
# The processor's markup: tags and patch indices.
_MARKUP = re.compile(r"<.*?>")
# One box: ``<patch_index_a><patch_index_b>``, then a delimiter before the next.
TOKENS_PER_BOX = 3


class Kosmos2Adapter(GeneratingAdapter):
    tools: ClassVar[frozenset[Tool]] = frozenset({"caption", "ground"})

    def _load_model(self, directory: Path, dtype: Any) -> Any:
        from transformers import Kosmos2ForConditionalGeneration

        return Kosmos2ForConditionalGeneration.from_pretrained(directory, dtype=dtype)

    def _prepare(self, processor: Any, model: Any) -> None:
        # A decoder-only model continues from the last position: prompts pad on the left.
        processor.tokenizer.padding_side = "left"

    # -- tools -----------------------------------------------------------------------------

    def caption(self, images: Sequence[Image.Image], detail: CaptionDetail = "short") -> list[str]:
        self._require("caption")
        prompt = CAPTION_PROMPTS[detail]
        generations = self.generate(images, [prompt] * len(images), self.options.max_new_tokens)
        return [self.caption_text(generation, prompt) for generation in generations]

    def ground(
        self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
    ) -> list[list[Box]]:
        self._require("ground")
        texts = phrase_lists(images, phrases)
        pairs = [(index, phrase) for index, group in enumerate(texts) for phrase in group]
        if not pairs:
            return [[] for _ in images]
        self.load()
        # An answer ends when the model closes the phrase's boxes.
        object_end = self.processor.tokenizer.convert_tokens_to_ids(self.processor.eoo_token)
        generations = self.generate(
            [images[index] for index, _ in pairs],
            [PHRASE_PROMPT.format(phrase=clean_text(phrase)) for _, phrase in pairs],
            self.box_budget(TOKENS_PER_BOX),
            stop_ids={int(object_end)},
        )
        found: list[list[list[Box]]] = [[] for _ in images]
        for (index, phrase), generation in zip(pairs, generations, strict=True):
            found[index].append(self.phrase_boxes(generation, phrase, images[index].size))
        return [rank_interleaved(per_phrase, self.options.max_boxes) for per_phrase in found]

    # -- parsing ---------------------------------------------------------------------------

    def entities(self, generation: Generation) -> tuple[str, list[Any]]:
        """The processor's reading of prompt and answer: the text without markup, and its
        entities ``(phrase, span, boxes in [0, 1] of the model's input)``."""
        text = self.processor.tokenizer.decode(
            [*generation.context, *generation.tokens], skip_special_tokens=True
        )
        caption, entities = self.processor.post_process_generation(text)
        return str(caption), list(entities)

    def caption_text(self, generation: Generation, prompt: str) -> str:
        """The caption without the prompt's own words."""
        caption, _ = self.entities(generation)
        prompt_words = _MARKUP.sub("", prompt).strip()
        return caption.removeprefix(prompt_words).strip()

    def phrase_boxes(self, generation: Generation, phrase: str, size: tuple[int, int]) -> list[Box]:
        """The boxes the answer gives the asked phrase, in pixels of an image of ``size``."""
        _, entities = self.entities(generation)
        asked = clean_text(phrase).lower()
        normalised = [
            list(box) for name, _, boxes in entities if name.lower() == asked for box in boxes
        ]
        if not normalised:
            return []
        layout = ResizeCrop.of(self.processor.image_processor, *size)
        pixels = layout.to_pixels(torch.tensor(normalised, dtype=torch.float32))
        score = generation.score if generation.score is not None else 0.0
        return [
            Box(phrase, score, (x1, y1, x2, y2))
            for (x1, y1, x2, y2) in pixels[has_area(pixels)].tolist()
        ]
