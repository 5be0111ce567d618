"""Greedy generation for the models that write their boxes as tokens (Florence-2, Kosmos-2).

One batch is one processor call, one ``generate`` and one read-out of each row
(:meth:`GeneratingAdapter.preprocess` -> :meth:`GeneratingAdapter._forward` ->
:meth:`GeneratingAdapter.postprocess`); the families parse the rows' text their own way.

A generation's score is the mean probability the model gave each token it generated, up to and
including the token that stopped it: how sure it was of the whole answer, boxes included. These
models give no per-box confidence, so every box of one answer carries the answer's score, and
``box_threshold`` (a detector's setting) does not apply to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from mmrag.errors import InvalidInput
from mmrag.models.transformers_base import TransformersAdapter, rgb, token_ids


@dataclass(frozen=True)
class Generation:
    context: list[int]  # what precedes the generated tokens in the row: prompt, or start token
    tokens: list[int]  # the generated tokens, up to and including the first stop token
    score: float | None  # mean token probability; None where nothing was generated


class GeneratingAdapter(TransformersAdapter):
    """Base of the adapters whose answers, boxes included, are generated text."""

    def generate(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        max_new_tokens: int,
        stop_ids: Iterable[int] = (),
    ) -> list[Generation]:
        """One greedy generation per image and prompt; ``stop_ids`` end a row besides the
        model's own end token."""
        if len(images) != len(prompts):
            raise InvalidInput(f"{len(images)} images but {len(prompts)} prompts")
        if not images:
            return []
        self.load()
        stops = token_ids(self.model.generation_config.eos_token_id) | set(stop_ids)
        output = self._forward(self.preprocess(images, prompts), max_new_tokens, stops)
        return self.postprocess(output.sequences, output.logits, stops)

    def box_budget(self, tokens_per_box: int) -> int:
        """New tokens allowed for an answer made of boxes: room for ``max_boxes`` of them, or
        ``max_new_tokens`` if that is more."""
        return max(self.options.max_new_tokens, tokens_per_box * self.options.max_boxes)

    def preprocess(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> Any:
        inputs = self.processor(
            images=rgb(images), text=list(prompts), return_tensors="pt", padding=True
        )
        return inputs.to(self.device, dtype=self.dtype)

    def _forward(self, inputs: Any, max_new_tokens: int, stop_ids: set[int]) -> Any:
        import torch

        with torch.inference_mode():
            return self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                # A checkpoint's own sampling settings do not apply to greedy decoding.
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=sorted(stop_ids) or None,
                return_dict_in_generate=True,
                output_logits=True,
            )

    def postprocess(
        self, sequences: Any, logits: Sequence[Any], stop_ids: set[int]
    ) -> list[Generation]:
        return read_generations(sequences, logits, stop_ids)


def read_generations(sequences: Any, logits: Sequence[Any], stop_ids: set[int]) -> list[Generation]:
    """Each row's generated tokens and score: the last ``len(logits)`` tokens of a row are the
    generated ones, cut after the first stop token (what follows is padding for rows that
    finished early)."""
    import torch

    steps = len(logits)
    rows = sequences.tolist()
    if steps == 0:
        return [Generation(row, [], None) for row in rows]
    generated = sequences[:, -steps:]
    chosen = torch.stack(
        [
            torch.softmax(step.float(), dim=-1).gather(1, generated[:, index : index + 1])[:, 0]
            for index, step in enumerate(logits)
        ],
        dim=1,
    )
    generations = []
    for index, row in enumerate(rows):
        tokens = row[-steps:]
        length = next(
            (position + 1 for position, token in enumerate(tokens) if token in stop_ids),
            len(tokens),
        )
        score = float(chosen[index, :length].mean())
        generations.append(Generation(row[:-steps], tokens[:length], score))
    return generations
