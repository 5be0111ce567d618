"""Grounding DINO: phrase grounding and open-vocabulary detection.

The model reads its texts as one prompt, phrases joined as ``"a. b. c."``, and scores each of
its query boxes against every token of it. Here a box's score for a phrase is the highest
probability among the phrase's tokens (the score Grounding DINO's usual box thresholds are set
for). Tokens are matched to phrases by their character offsets in the prompt, so every label
is exactly one of the caller's phrases, never a decoded fragment of the prompt. Phrases that do
not fit one prompt (``max_text_len`` tokens, 256 in the released checkpoints) are spread over
several prompts, each one more row of the same forward pass.

Boxes come out relative to the image without the processor's batch padding, and are scaled by
each original image's own size. Precision: fp32 on CUDA too (0.7 GB for the tiny checkpoint;
its deformable attention and box regression are not worth the risk of fp16).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image

from mmrag.models.grounding.adapter import clean_text
from mmrag.models.grounding.boxes import cxcywh_to_xyxy, normalised_to_pixels
from mmrag.models.grounding.scoring import ScoringDetector
from mmrag.models.grounding.selection import Scored
from mmrag.models.transformers_base import CudaDtype, rgb

Span = tuple[int, int]
# Special tokens around a prompt ([CLS] and [SEP]).
PROMPT_OVERHEAD = 2


@dataclass(frozen=True)
class Prompt:
    """One row of a batch: an image and some of its texts, joined as Grounding DINO reads them."""

    image: int  # index of the image in the batch
    columns: list[int]  # which of the image's texts, by index
    text: str
    spans: list[Span]  # each text's characters in ``text``


def prompt_piece(text: str) -> str:
    """A text as it goes into the prompt: lower case, as the model was trained; a full stop
    inside it would split it in two, so it becomes a space."""
    return clean_text(text.replace(".", " ")).lower()


def build_prompt(image: int, columns: Sequence[int], pieces: Sequence[str]) -> Prompt:
    """``"a. b. c."`` from the pieces of ``columns``, and where each lies in it."""
    chosen = [pieces[column] for column in columns]
    spans = []
    position = 0
    for piece in chosen:
        spans.append((position, position + len(piece)))
        position += len(piece) + len(". ")
    return Prompt(image, list(columns), ". ".join(chosen) + ".", spans)


def pack_columns(token_counts: Sequence[int], budget: int) -> list[list[int]]:
    """Texts (by index) grouped in order so that each group's tokens, one full stop after each
    text included, fit ``budget``; a text longer than the budget goes alone (and is truncated)."""
    groups: list[list[int]] = []
    used = budget
    for column, count in enumerate(token_counts):
        needed = count + 1
        if used + needed > budget:
            groups.append([])
            used = 0
        groups[-1].append(column)
        used += needed
    return groups


def token_masks(offsets: Sequence[Span], spans: Sequence[Span], length: int) -> torch.Tensor:
    """Which token positions (``length`` of them) belong to each span, from the tokens'
    character offsets (special and padding tokens have empty offsets and belong to none)."""
    masks = torch.zeros(len(spans), length, dtype=torch.bool)
    for position, (start, end) in enumerate(offsets[:length]):
        if end <= start:
            continue
        for row, (span_start, span_end) in enumerate(spans):
            if start >= span_start and end <= span_end:
                masks[row, position] = True
    return masks


class GroundingDinoAdapter(ScoringDetector):
    cuda_dtype: ClassVar[CudaDtype] = "float32"

    def _load_model(self, directory: Path, dtype: Any) -> Any:
        from transformers import AutoModelForZeroShotObjectDetection

        return AutoModelForZeroShotObjectDetection.from_pretrained(directory, dtype=dtype)

    def _prepare(self, processor: Any, model: Any) -> None:
        if not getattr(processor.tokenizer, "is_fast", False):
            # Tokens are matched to phrases by character offsets, which only fast tokenizers give.
            raise TypeError(f"{type(processor.tokenizer).__name__} gives no character offsets")

    # -- one batch -------------------------------------------------------------------------

    def score(self, images: Sequence[Image.Image], texts: Sequence[Sequence[str]]) -> list[Scored]:
        """Every candidate box of each image scored against each of that image's texts."""
        if not images:
            return []
        self.load()
        prompts = self.prompts(texts)
        if not prompts:
            return [Scored(torch.zeros(0, 4), torch.zeros(0, len(group))) for group in texts]
        inputs, masks = self.preprocess(images, prompts)
        return self.postprocess(self._forward(inputs), masks, prompts, images, texts)

    def prompts(self, texts: Sequence[Sequence[str]]) -> list[Prompt]:
        """The rows of a batch: each image's texts packed into as few prompts as fit."""
        budget = self.model.config.max_text_len - PROMPT_OVERHEAD
        prompts = []
        for image, image_texts in enumerate(texts):
            if not image_texts:
                continue
            pieces = [prompt_piece(text) for text in image_texts]
            counts = self.processor.tokenizer(pieces, add_special_tokens=False)["input_ids"]
            for columns in pack_columns([len(ids) for ids in counts], budget):
                prompts.append(build_prompt(image, columns, pieces))
        return prompts

    def preprocess(
        self, images: Sequence[Image.Image], prompts: Sequence[Prompt]
    ) -> tuple[Any, list[torch.Tensor]]:
        """The processor's tensors for the prompts' rows, and each row's phrase-token masks."""
        inputs = self.processor(
            images=rgb([images[prompt.image] for prompt in prompts]),
            text=[prompt.text for prompt in prompts],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.model.config.max_text_len,
            return_offsets_mapping=True,
        )
        offsets = inputs.pop("offset_mapping").tolist()
        length = int(inputs["input_ids"].shape[1])
        masks = [
            token_masks(row_offsets, prompt.spans, length)
            for row_offsets, prompt in zip(offsets, prompts, strict=True)
        ]
        return inputs.to(self.device, dtype=self.dtype), masks

    def _forward(self, inputs: Any) -> Any:
        with torch.inference_mode():
            return self.model(**inputs)

    def postprocess(
        self,
        outputs: Any,
        masks: Sequence[torch.Tensor],
        prompts: Sequence[Prompt],
        images: Sequence[Image.Image],
        texts: Sequence[Sequence[str]],
    ) -> list[Scored]:
        """Pixel boxes and per-text scores of each image, from all of its rows."""
        probabilities = outputs.logits.float().sigmoid().cpu()  # rows x queries x tokens
        corners = cxcywh_to_xyxy(outputs.pred_boxes.float().cpu())
        boxes: list[list[torch.Tensor]] = [[] for _ in images]
        scores: list[list[torch.Tensor]] = [[] for _ in images]
        for row, (prompt, mask) in enumerate(zip(prompts, masks, strict=True)):
            width, height = images[prompt.image].size
            boxes[prompt.image].append(normalised_to_pixels(corners[row], width, height))
            tokens = probabilities[row, :, : mask.shape[1]]
            # Probabilities are >= 0, so zeroing other tokens leaves each phrase's maximum.
            by_phrase = (tokens[:, None, :] * mask[None, :, :]).amax(dim=-1)
            full = torch.zeros(tokens.shape[0], len(texts[prompt.image]))
            full[:, prompt.columns] = by_phrase
            scores[prompt.image].append(full)
        return [
            Scored(torch.cat(image_boxes), torch.cat(image_scores))
            if image_boxes
            else Scored(torch.zeros(0, 4), torch.zeros(0, len(group)))
            for image_boxes, image_scores, group in zip(boxes, scores, texts, strict=True)
        ]
