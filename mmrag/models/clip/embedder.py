"""CLIP-family embedder on open_clip: images and texts into one L2-normalised vector space.

Preprocessing is split in two so that ingest can overlap it with the forward pass:
:meth:`ClipEmbedder.prepare_image` (resize + crop to a uint8 array, run in decode threads) and
:meth:`ClipEmbedder.embed_prepared` (normalise a batch, forward, L2-normalise).

Precision: fp32 on CPU (optionally dynamic int8 for the image tower's MLPs), open_clip's fp16
mixed precision on CUDA (Linear/conv weights fp16, LayerNorm parameters fp32). Vectors always
come back as float32 numpy arrays, normalised in fp32.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from mmrag.errors import InvalidInput, ModelUnavailable, UnknownModel
from mmrag.models.base import Device, InferenceModel, Tool, resolve_device
from mmrag.models.clip.preprocess import (
    ImagePreprocess,
    PreparedImage,
    fit_image,
    normalise_batch,
)
from mmrag.models.spec import ModelSpec

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
Precision = Literal["auto", "fp32", "fp16"]

OFFLINE_HINT = (
    "Run with MMRAG_PROFILE=offline to use the fixture models (no download), "
    "or put open_clip weights in a directory and use local:/path"
)
LOCAL_DIR = "local-dir:"


@dataclass(frozen=True)
class EmbedderOptions:
    device: Device = "auto"
    cpu_threads: int = 0  # 0: one per usable core (see mmrag.models.torch_setup)
    int8: bool = False  # dynamic int8 of the image tower's MLP Linear layers; CPU + fp32 only
    batch_size: int = 32
    cache_dir: Path | None = None  # None: Hugging Face's and open_clip's own caches
    precision: Precision = "auto"  # auto: fp16 on CUDA, fp32 on CPU


@dataclass(frozen=True)
class OpenClipSource:
    """Where open_clip finds a model: a built-in architecture plus a pretrained tag or file,
    or a local directory holding ``open_clip_config.json`` and weights."""

    model_name: str  # "ViT-B-32" or "local-dir:/path"
    pretrained: str | None = None

    def describe(self) -> str:
        return f"{self.model_name}" + (f" ({self.pretrained})" if self.pretrained else "")


def resolve_precision(precision: Precision, device: str) -> Literal["fp32", "fp16"]:
    if precision != "auto":
        return precision
    return "fp16" if device == "cuda" else "fp32"


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
        if options.batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, not {options.batch_size}")
        self.source = source
        self.options = options
        self.random_weights = random_weights  # real compute, no download: benchmarks only
        self._model: Any = None
        self._tokenizer: Callable[[Sequence[str]], Any] | None = None
        self._device = "cpu"
        self._dtype: Any = None
        self.preprocess_cfg = ImagePreprocess()
        self.precision: Literal["fp32", "fp16"] = "fp32"
        self.quantized = False
        self.threads = 0  # torch CPU threads set at load; 0 on GPU
        self.dim = 0

    # -- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        from mmrag.models.torch_setup import configure_cpu_threads, ensure_torchvision

        ensure_torchvision()
        import torch
        from safetensors import SafetensorError

        self._device = resolve_device(self.requested_device)
        self.precision = resolve_precision(self.options.precision, self._device)
        if self._device == "cpu":
            self.threads = configure_cpu_threads(self.options.cpu_threads)
        try:
            model, tokenizer = self._build()
            preprocess_cfg = ImagePreprocess.from_open_clip(model.visual.preprocess_cfg)
        except UnknownModel:
            raise
        except ModelUnavailable as error:
            detail = f"cannot load {self.spec}: {error.detail}. {OFFLINE_HINT}"
            raise ModelUnavailable(detail) from error
        except (RuntimeError, OSError, ValueError, SafetensorError) as error:
            # Missing or corrupt files, or weights that do not fit the architecture.
            raise ModelUnavailable(
                f"cannot load {self.spec} ({self.source.describe()}): {_first_line(error)}. "
                f"{OFFLINE_HINT}"
            ) from error
        model.eval()
        self._dtype = torch.float16 if self.precision == "fp16" else torch.float32
        if self.options.int8:
            if self._device == "cpu" and self.precision == "fp32":
                model = quantize_mlp_int8(model)
                self.quantized = True
            else:
                log.warning(
                    "int8 ignored: it is for fp32 on CPU and %s runs %s on %s",
                    self.spec,
                    self.precision,
                    self._device,
                )
        self.preprocess_cfg = preprocess_cfg
        self._model = model
        self._tokenizer = tokenizer
        with torch.inference_mode():
            probe = model.encode_text(tokenizer(["probe"]).to(self._device))
        self.dim = int(probe.shape[-1])
        log.info(
            "loaded %s on %s (%s%s, dim %d, %s)",
            self.spec,
            self._device,
            self.precision,
            " + int8 MLPs" if self.quantized else "",
            self.dim,
            f"{self.threads} threads" if self._device == "cpu" else "GPU",
        )

    def _build(self) -> tuple[Any, Callable[[Sequence[str]], Any]]:
        """The open_clip model (on its device, in its precision) and its tokenizer."""
        import open_clip

        name = self.source.model_name
        common: dict[str, Any] = {"device": self._device, "precision": self.precision}
        if self.random_weights or name.startswith(LOCAL_DIR):
            # A local directory carries its own config, weights and preprocessing.
            model = open_clip.create_model(name, load_weights=not self.random_weights, **common)
        elif not self.source.pretrained:
            raise UnknownModel(f"{self.spec} names no pretrained weights: add @<tag>")
        else:
            from open_clip.transform import merge_preprocess_dict

            from mmrag.models.clip.weights import resolve_checkpoint

            checkpoint = resolve_checkpoint(name, self.source.pretrained, self.options.cache_dir)
            model = open_clip.create_model(
                name,
                pretrained=checkpoint.path,
                # open_clip applies a tag's settings only when handed the tag; we hand it the file.
                force_quick_gelu=checkpoint.quick_gelu,
                force_preprocess_cfg=merge_preprocess_dict({}, dict(checkpoint.tag_cfg)),
                **common,
            )
        return model, open_clip.get_tokenizer(name)

    def _unload(self) -> None:
        self._model = None
        self._tokenizer = None

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model's input."""
        self.load()
        return (self.preprocess_cfg.width, self.preprocess_cfg.height)

    # -- images ----------------------------------------------------------------------------

    def prepare_image(self, image: Image.Image) -> PreparedImage:
        """Resize and crop (or pad) to the input size exactly as open_clip's eval transform."""
        self.load()
        return fit_image(image, self.preprocess_cfg)

    def preprocess_images(self, prepared: Sequence[PreparedImage]) -> Any:
        import torch

        pixels = torch.from_numpy(np.stack(prepared)).to(self._device)
        return normalise_batch(pixels, self.preprocess_cfg).to(dtype=self._dtype)

    def _forward_images(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self._model.encode_image(batch)

    def embed_prepared(self, prepared: Sequence[PreparedImage]) -> Vectors:
        """Embed already-prepared images, batch by batch: ``N x dim`` unit vectors."""
        self.load()
        expected = (self.preprocess_cfg.height, self.preprocess_cfg.width, 3)
        for pixels in prepared:
            if pixels.shape != expected or pixels.dtype != np.uint8:
                raise InvalidInput(
                    f"prepared image is {pixels.dtype} {pixels.shape}, expected uint8 {expected}"
                )
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
        """Embed texts (truncated to the model's context): ``N x dim`` unit vectors."""
        if isinstance(texts, str):  # a bare string is a sequence of one-letter texts
            raise InvalidInput("embed_texts takes a list of texts, not a string")
        if any(not text.strip() for text in texts):  # all checked before any compute
            raise InvalidInput("cannot embed an empty text")
        self.load()
        step = self.options.batch_size
        chunks = [
            self.postprocess(self._forward_texts(self.preprocess_texts(texts[i : i + step])))
            for i in range(0, len(texts), step)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    # -- shared ----------------------------------------------------------------------------

    def postprocess(self, features: Any) -> Vectors:
        """L2-normalise in fp32 (fp16 norms lose digits) and hand back numpy."""
        vectors = features.float()
        vectors = vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32)


def quantize_mlp_int8(model: Any) -> Any:
    """Dynamic int8 (per-channel weights) for the image tower's transformer MLP Linear layers.

    What stays fp32, and why:

    - attention: open_clip's attention reads ``out_proj.weight`` directly, which a quantized
      Linear does not have, so quantising the whole model breaks it;
    - LayerNorms, the patch-embedding conv, class/position embeddings and the final projection
      (small, and where errors would reach every token);
    - the text tower: a search query is one short text, so int8 would save milliseconds and
      only cost accuracy. Bulk ingest, the throughput-bound path, is all images.

    The MLPs hold about two thirds of ViT-B-32's FLOPs; on AVX2 the int8 GEMMs run about twice
    as fast as fp32 (bench/embed_throughput.py).
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao once per module; it works.
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation")
        for module in model.visual.modules():
            mlp = getattr(module, "mlp", None)
            if isinstance(mlp, torch.nn.Module):
                module.mlp = quantize_dynamic(  # type: ignore[no-untyped-call]
                    mlp, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
                )
    return model


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
