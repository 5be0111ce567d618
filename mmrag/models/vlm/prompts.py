"""The instructions the generative adapters send, shared with the fixture VLM's training data:
the fixture learns exactly the prompts the adapters ask."""

from __future__ import annotations

from mmrag.models.vision import CaptionDetail

CAPTION_PROMPTS: dict[CaptionDetail, str] = {
    "short": "Describe this image in one sentence.",
    "detailed": "Describe this image in detail.",
}
