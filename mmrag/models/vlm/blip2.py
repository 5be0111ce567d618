"""BLIP-2 and InstructBLIP: a frozen image encoder and a Q-Former feeding a language model
(OPT, Flan-T5, Vicuna).

BLIP-2's language models are not instruction-tuned: it captions from the image alone and
answers after the cue it was trained with (``Question: ... Answer:``). InstructBLIP follows
instructions, so it gets the shared caption instructions and the bare question (its Q-Former
reads the same text). Prompts pad on the left for decoder-only language models (OPT, Vicuna),
on the right for encoder-decoder ones (Flan-T5).
"""

from __future__ import annotations

from typing import Any

from mmrag.models.vision import CaptionDetail
from mmrag.models.vlm.generative import GenerativeVlm, PaddingSide
from mmrag.models.vlm.prompts import BLIP2_QUESTION_TEMPLATE


class _QformerVlm(GenerativeVlm):
    def _configure(self, processor: Any, model: Any) -> None:
        # transformers' BLIP-2 and InstructBLIP processors read ``image_token.content``, but
        # take the token as a plain string from a tokenizer that names one: make it a token.
        if isinstance(processor.image_token, str):
            from tokenizers import AddedToken

            processor.image_token = AddedToken(
                processor.image_token, normalized=False, special=True
            )

    def _padding_side(self, model: Any) -> PaddingSide:
        return "right" if model.config.text_config.is_encoder_decoder else "left"

    def format_prompt(self, prompt: str) -> str:
        # No chat template: the processor puts the query tokens before the text itself.
        return prompt


class Blip2Adapter(_QformerVlm):
    def caption_prompt(self, detail: CaptionDetail) -> str | None:
        return None

    def question_prompt(self, question: str) -> str:
        return BLIP2_QUESTION_TEMPLATE.format(question=question)


class InstructBlipAdapter(_QformerVlm):
    pass
