"""BLIP (Salesforce): a captioning checkpoint serves ``caption``, a VQA checkpoint ``vqa``.

One registry entry (``model_type`` "blip") covers both; the checkpoint's ``architectures`` says
which it is, so constructing :class:`BlipAdapter` returns a :class:`BlipCaptioner` or a
:class:`BlipAnswerer`. BLIP is not instruction-tuned: it captions from the image alone (both
caption details give the same caption) and answers the bare question. Its text decoder stops
at ``[SEP]``; inputs pad on the right (a BERT encoder reads the question).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from mmrag.errors import UnknownModel
from mmrag.models.base import Tool
from mmrag.models.hf_hub import hub_config, read_config
from mmrag.models.spec import ModelSpec
from mmrag.models.transformers_base import token_ids
from mmrag.models.vision import CaptionDetail, VisionOptions
from mmrag.models.vlm.generative import GenerativeVlm, PaddingSide

CAPTIONING = "BlipForConditionalGeneration"
QUESTION_ANSWERING = "BlipForQuestionAnswering"


class BlipAdapter(GenerativeVlm):
    """Base of the two BLIP adapters; constructing it picks one from the checkpoint's config."""

    tools: ClassVar[frozenset[Tool]] = frozenset()
    architecture: ClassVar[str] = ""

    def __new__(
        cls, spec: ModelSpec, options: VisionOptions = VisionOptions(), source: Path | None = None
    ) -> BlipAdapter:
        if cls is not BlipAdapter:
            return super().__new__(cls)
        config = read_config(source) if source is not None else hub_config(spec, options.cache_dir)
        architectures = config.get("architectures") or []
        for variant in (BlipCaptioner, BlipAnswerer):
            if variant.architecture in architectures:
                return super().__new__(variant)
        raise UnknownModel(
            f"{spec}: BLIP architectures {architectures} are neither {CAPTIONING} (captioning) "
            f"nor {QUESTION_ANSWERING} (VQA)"
        )

    def _load_model(self, directory: Path, dtype: Any) -> Any:
        import transformers

        return getattr(transformers, self.architecture).from_pretrained(directory, dtype=dtype)

    def _padding_side(self, model: Any) -> PaddingSide:
        return "right"

    def _stop_token_ids(self) -> set[int]:
        return token_ids(self.model.config.text_config.sep_token_id)

    def caption_prompt(self, detail: CaptionDetail) -> str | None:
        return None

    def format_prompt(self, prompt: str) -> str:
        return prompt


class BlipCaptioner(BlipAdapter):
    tools: ClassVar[frozenset[Tool]] = frozenset({"caption"})
    architecture: ClassVar[str] = CAPTIONING


class BlipAnswerer(BlipAdapter):
    tools: ClassVar[frozenset[Tool]] = frozenset({"vqa"})
    architecture: ClassVar[str] = QUESTION_ANSWERING
