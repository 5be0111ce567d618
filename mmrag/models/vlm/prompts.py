"""The instructions the generative adapters send, shared with the fixture VLM's training data:
the fixture learns exactly the prompts the adapters ask."""

from __future__ import annotations

from mmrag.models.vision import CaptionDetail

CAPTION_PROMPTS: dict[CaptionDetail, str] = {
    "short": "Describe this image in one sentence.",
    "detailed": "Describe this image in detail.",
}

# LLaVA-1.5's conversation format, for checkpoints saved without a chat template (the fixture
# VLM is trained on exactly this). ``{prompt}`` is the instruction or the question.
LLAVA_PLAIN_TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"

# BLIP-2's language models (OPT, Flan-T5) are not chat models: they answer after this cue.
BLIP2_QUESTION_TEMPLATE = "Question: {question} Answer:"
