"""InternVL in transformers' own format (``model_type`` "internvl": the ``-hf`` checkpoints,
e.g. OpenGVLab/InternVL3-1B-hf; the original remote-code checkpoints are not supported).

Prompts go through the chat template. The image is cut into 448 px tiles plus a thumbnail, at
most the processor's ``max_patches`` (12 by default), which bounds its tokens. The processor
reads its image tokens (``<img>``, ``</img>``, ``<IMG_CONTEXT>``) from tokenizer attributes that
the checkpoint's tokenizer config must set; a tokenizer without them fails at load with
:class:`~mmrag.errors.ModelUnavailable`.
"""

from __future__ import annotations

from mmrag.models.vlm.generative import ChatVlm


class InternVlAdapter(ChatVlm):
    pass
