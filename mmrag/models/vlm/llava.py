"""LLaVA-1.5 and LLaVA-NeXT (llava-hf checkpoints).

Prompts go through the checkpoint's chat template. A LLaVA-1.5 checkpoint saved without one
(older conversions, and the project's fixture VLM) gets LLaVA-1.5's own conversation format,
:data:`~mmrag.models.vlm.prompts.LLAVA_PLAIN_TEMPLATE`. LLaVA-NeXT checkpoints differ in format
(Vicuna, Mistral, Llama-3), so they need their template. Image size is bounded by the family:
LLaVA-1.5 resizes to one square (336 px), LLaVA-NeXT to at most its largest grid pinpoint
(672 px: four tiles and an overview).
"""

from __future__ import annotations

from mmrag.models.vlm.generative import ChatVlm, GenerativeVlm
from mmrag.models.vlm.prompts import LLAVA_PLAIN_TEMPLATE


class LlavaAdapter(GenerativeVlm):
    def format_prompt(self, prompt: str) -> str:
        if self.processor.chat_template:
            return super().format_prompt(prompt)
        return LLAVA_PLAIN_TEMPLATE.format(prompt=prompt)


class LlavaNextAdapter(ChatVlm):
    pass
