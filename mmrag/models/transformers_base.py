"""What every adapter over a transformers checkpoint shares: loading the processor and the
model from the checkpoint directory onto their device, once, and the small helpers of batches.

Precision: fp32 on CPU (bf16 matmuls are many times slower on CPUs without AVX-512 bf16); on
CUDA each family picks its own (:meth:`TransformersAdapter._cuda_dtype`).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from PIL import Image

from mmrag.errors import InvalidInput, ModelUnavailable
from mmrag.models.base import Tool, resolve_device
from mmrag.models.spec import ModelSpec
from mmrag.models.vision import ToolNotServed, VisionModel, VisionOptions

log = logging.getLogger(__name__)

CudaDtype = Literal["float16", "bfloat16", "float32"]

# What a broken or mismatched model directory raises inside from_pretrained: missing files
# (OSError), configs or weights that do not fit (ValueError, RuntimeError, KeyError), a tokenizer
# without the attributes its processor reads (AttributeError, TypeError); corrupt weight files
# raise safetensors' own error, caught beside these.
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, AttributeError, TypeError)


class TransformersAdapter(VisionModel):
    """Loads ``processor`` and ``model`` from the checkpoint directory, once."""

    cuda_dtype: ClassVar[CudaDtype] = "float16"

    def __init__(
        self, spec: ModelSpec, options: VisionOptions = VisionOptions(), source: Path | None = None
    ) -> None:
        super().__init__(spec, options, source)
        if options.max_boxes < 1:
            raise InvalidInput(f"max_boxes must be at least 1, not {options.max_boxes}")
        self.processor: Any = None
        self.model: Any = None
        self.device = "cpu"
        self.dtype: Any = None
        self.threads = 0  # torch CPU threads set at load; 0 on GPU

    def _load(self) -> None:
        from mmrag.models.torch_setup import configure_cpu_threads, ensure_torchvision

        ensure_torchvision()
        import torch
        from safetensors import SafetensorError

        self.device = resolve_device(self.requested_device)
        if self.device == "cuda":
            self.dtype = self._cuda_dtype()
        else:
            self.dtype = torch.float32
            self.threads = configure_cpu_threads(self.options.cpu_threads)
        if self.source is None:
            from mmrag.models.hf_hub import hub_snapshot

            self.source = hub_snapshot(self.spec, self.options.cache_dir)
        try:
            processor = self._load_processor(self.source)
            model = self._load_model(self.source, self.dtype)
            self._prepare(processor, model)
        except (*LOAD_ERRORS, SafetensorError) as error:
            raise ModelUnavailable(
                f"cannot load {self.spec} from {self.source}: {_first_line(error)}"
            ) from error
        model.to(self.device)
        model.eval()
        self.processor = processor
        self.model = model
        log.info(
            "loaded %s (%s) on %s, %s, serving %s",
            self.spec,
            type(model).__name__,
            self.device,
            str(self.dtype).removeprefix("torch."),
            ", ".join(sorted(self.tools)),
        )

    def _cuda_dtype(self) -> Any:
        import torch

        return getattr(torch, self.cuda_dtype)

    def _load_processor(self, directory: Path) -> Any:
        from transformers import AutoProcessor

        # Not annotated in transformers: typed here.
        from_pretrained = cast("Callable[[Path], Any]", AutoProcessor.from_pretrained)
        return from_pretrained(directory)

    @abstractmethod
    def _load_model(self, directory: Path, dtype: Any) -> Any:
        """The model from ``directory`` in ``dtype`` (on CPU; moved to the device after)."""

    def _prepare(self, processor: Any, model: Any) -> None:
        """Family settings applied once at load; raise one of ``LOAD_ERRORS`` (or
        :class:`ModelUnavailable`) to refuse a checkpoint this adapter cannot serve."""

    def _unload(self) -> None:
        self.processor = None
        self.model = None

    def _require(self, tool: Tool) -> None:
        if not self.serves(tool):
            raise ToolNotServed(self.unserved_reason(tool))


def rgb(images: Sequence[Image.Image]) -> list[Image.Image]:
    return [image if image.mode == "RGB" else image.convert("RGB") for image in images]


def token_ids(value: int | Sequence[int] | None) -> set[int]:
    """A config's token id field (one id, a list, or none) as a set."""
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(token) for token in value}


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
