"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL (one adapter: the same processor contract).

Prompts go through the chat template. The processor also returns ``mm_token_type_ids``, which
these models need to place their multimodal rotary positions (M-RoPE); it is asked for
explicitly so that a processor config cannot turn it off. Images keep their aspect ratio at
dynamic resolution, capped at :data:`~mmrag.models.vlm.generative.MAX_IMAGE_TOKENS` visual
tokens.
"""

from __future__ import annotations

from typing import Any

from mmrag.models.vlm.generative import MAX_IMAGE_TOKENS, ChatVlm, bound_image_tokens


class QwenVlAdapter(ChatVlm):
    def _configure(self, processor: Any, model: Any) -> None:
        super()._configure(processor, model)
        bound_image_tokens(processor.image_processor, MAX_IMAGE_TOKENS)

    def _processor_kwargs(self) -> dict[str, Any]:
        return {"return_mm_token_type_ids": True}
