"""GLM-4V (GLM-4.1V: the VisualGLM / CogVLM line in transformers).

Prompts go through the chat template; like Qwen-VL the model needs ``mm_token_type_ids`` and
resizes images dynamically, capped at :data:`~mmrag.models.vlm.generative.MAX_IMAGE_TOKENS`
visual tokens (GLM-4V's pixel budget counts an image as a two-frame temporal patch). The
Thinking checkpoints reason before answering: the answer is taken from their output
(:meth:`~mmrag.models.vlm.generative.GenerativeVlm.clean_text`), and they need a
``max_new_tokens`` large enough to finish thinking.
"""

from __future__ import annotations

from typing import Any

from mmrag.models.vlm.generative import MAX_IMAGE_TOKENS, ChatVlm, bound_image_tokens


class Glm4vAdapter(ChatVlm):
    def _configure(self, processor: Any, model: Any) -> None:
        super()._configure(processor, model)
        image_processor = processor.image_processor
        bound_image_tokens(
            image_processor, MAX_IMAGE_TOKENS, frames=int(image_processor.temporal_patch_size)
        )

    def _processor_kwargs(self) -> dict[str, Any]:
        return {"return_mm_token_type_ids": True}
