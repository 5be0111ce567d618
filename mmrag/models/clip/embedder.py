"""CLIP-family embedder on open_clip: images and texts into one normalised vector space.

Preprocessing is split in two so that ingest can overlap it with the forward pass:
:meth:`ClipEmbedder.prepare_image` (resize + centre crop to a uint8 array, run in decode
threads) and :meth:`ClipEmbedder.embed_prepared` (normalise a batch, forward, L2-normalise).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from mmrag.errors import InvalidInput, ModelUnavailable
from mmrag.models.base import Device, InferenceModel, Tool, resolve_device
from mmrag.models.spec import ModelSpec

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
PreparedImage = npt.NDArray[np.uint8]  # H x W x 3, already at the model's input size

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class EmbedderOptions:
    device: Device = "auto"
    cpu_threads: int = 0  # 0: one per usable core
    int8: bool = False  # dynamic int8 of the MLP Linear layers, CPU only
    batch_size: int = 32
    cache_dir: Path | None = None


@dataclass(frozen=True)
class OpenClipSource:
    """Where open_clip finds a model: a built-in architecture plus a pretrained tag or file,
    or a local directory holding ``open_clip_config.json`` and weights."""

    model_name: str  # "ViT-B-32" or "local-dir:/path"
    pretrained: str | None = None

    def describe(self) -> str:
        return f"{self.model_name}" + (f" ({self.pretrained})" if self.pretrained else "")


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ClipEmbedder(InferenceModel):
    """An open_clip model that embeds images and texts."""

    tools: ClassVar[frozenset[Tool]] = frozenset({"embed"})

    def __init__(
        self,
        spec: ModelSpec,
        source: OpenClipSource,
        options: EmbedderOptions = EmbedderOptions(),
        random_weights: bool = False,
    ) -> None:
        super().__init__(spec, options.device)
        self.source = source
        self.options = options
        self.random_weights = random_weights  # real compute, no download: benchmarks only
        self._model: Any = None
        self._tokenizer: Callable[[Sequence[str]], Any] | None = None
        self._device = "cpu"
        self._dtype: Any = None
        self._size: tuple[int, int] = (224, 224)
        self._mean: Any = None
        self._std: Any = None
        self._resample = Image.Resampling.BICUBIC
        self.dim = 0

    # -- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        from mmrag.models.torch_setup import ensure_torchvision

        ensure_torchvision()
        import open_clip
        import torch

        self._device = resolve_device(self.requested_device)
        if self._device == "cpu":
            threads = self.options.cpu_threads or usable_cores()
            torch.set_num_threads(threads)
        pretrained = None if self.random_weights else self.source.pretrained
        try:
            model, _, _ = open_clip.create_model_and_transforms(
                self.source.model_name,
                pretrained=pretrained,
                cache_dir=str(self.options.cache_dir) if self.options.cache_dir else None,
            )
            tokenizer = open_clip.get_tokenizer(self.source.model_name)
        except (RuntimeError, OSError, ValueError) as error:
            raise ModelUnavailable(
                f"cannot load {self.spec} ({self.source.describe()}): {_first_line(error)}. "
                "No model hub is reachable? Run with MMRAG_PROFILE=offline to use the fixture "
                "models, or put the weights in a local directory and use local:/path"
            ) from error
        model.eval()
        if self._device == "cuda":
            model = model.to(device="cuda", dtype=torch.float16)
            self._dtype = torch.float16
        else:
            self._dtype = torch.float32
            if self.options.int8:
                model = quantize_mlp_int8(model)
        cfg = model.visual.preprocess_cfg
        size = cfg.get("size", 224)
        self._size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self._mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self._resample = _RESAMPLE.get(cfg.get("interpolation", "bicubic"), self._resample)
        self._model = model
        self._tokenizer = tokenizer
        with torch.inference_mode():
            probe = model.encode_text(tokenizer(["probe"]).to(self._device))
        self.dim = int(probe.shape[-1])
        log.info("loaded %s on %s (dim %d)", self.spec, self._device, self.dim)

    def _unload(self) -> None:
        self._model = None
        self._tokenizer = None

    @property
    def input_size(self) -> tuple[int, int]:
        self.load()
        return self._size

    # -- images ----------------------------------------------------------------------------

    def prepare_image(self, image: Image.Image) -> PreparedImage:
        """Resize the shorter side to the input size and centre-crop, as open_clip does."""
        width, height = self.input_size
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        scale = max(width / rgb.width, height / rgb.height)
        resized_w = max(width, round(rgb.width * scale))
        resized_h = max(height, round(rgb.height * scale))
        # reducing_gap lets Pillow shrink big images in cheap integer steps first.
        resized = rgb.resize((resized_w, resized_h), self._resample, reducing_gap=3.0)
        left = (resized_w - width) // 2
        top = (resized_h - height) // 2
        cropped = resized.crop((left, top, left + width, top + height))
        return np.asarray(cropped, dtype=np.uint8)

    def preprocess_images(self, prepared: Sequence[PreparedImage]) -> Any:
        import torch

        batch = torch.from_numpy(np.stack(prepared)).permute(0, 3, 1, 2).float().div_(255.0)
        batch = (batch - self._mean) / self._std
        return batch.to(self._device, dtype=self._dtype)

    def _forward_images(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self._model.encode_image(batch)

    def embed_prepared(self, prepared: Sequence[PreparedImage]) -> Vectors:
        """Embed already-prepared images, batch by batch."""
        self.load()
        step = self.options.batch_size
        chunks = [
            self.postprocess(self._forward_images(self.preprocess_images(prepared[i : i + step])))
            for i in range(0, len(prepared), step)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        return self.embed_prepared([self.prepare_image(image) for image in images])

    # -- texts -----------------------------------------------------------------------------

    def preprocess_texts(self, texts: Sequence[str]) -> Any:
        if any(not text.strip() for text in texts):
            raise InvalidInput("cannot embed an empty text")
        assert self._tokenizer is not None
        return self._tokenizer(list(texts)).to(self._device)

    def _forward_texts(self, tokens: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self._model.encode_text(tokens)

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        self.load()
        step = self.options.batch_size
        chunks = [
            self.postprocess(self._forward_texts(self.preprocess_texts(texts[i : i + step])))
            for i in range(0, len(texts), step)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    # -- shared ----------------------------------------------------------------------------

    def postprocess(self, features: Any) -> Vectors:
        """L2-normalise in fp32 and hand back numpy."""
        vectors = features.float()
        vectors = vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32)


def quantize_mlp_int8(model: Any) -> Any:
    """Dynamic int8 for the transformer MLP Linear layers.

    Whole-model quantisation breaks open_clip (its attention reads ``out_proj.weight``
    directly), so only the ``mlp`` blocks, where most of the FLOPs are, are converted.
    """
    import torch
    from torch.ao.quantization import quantize_dynamic

    for module in model.modules():
        mlp = getattr(module, "mlp", None)
        if isinstance(mlp, torch.nn.Module):
            module.mlp = quantize_dynamic(mlp, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
