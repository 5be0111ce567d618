"""CLIP-family embedder on open_clip: images and texts into one L2-normalised vector space.

Preprocessing is split in two so that ingest can overlap it with the forward pass:
:meth:`ClipEmbedder.prepare_image` (resize + crop to a uint8 array, run in decode threads) and
:meth:`ClipEmbedder.embed_prepared` (normalise a batch, forward, L2-normalise).

Runtimes: on CPU the towers run on torch, ONNX Runtime or OpenVINO, in fp32, bf16 or int8,
picked per machine and proved against torch fp32 before serving (mmrag.models.clip.backends and
.parity); on CUDA torch with open_clip's fp16 mixed precision (Linear/conv weights fp16,
LayerNorm parameters fp32). Vectors always come back as float32 numpy arrays, normalised in
fp32.
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
from mmrag.models.clip.backends import BackendSetting, Choice
from mmrag.models.clip.preprocess import ImagePreprocess, PreparedImage, fit_image
from mmrag.models.clip.runtimes import TorchRunner, TowerRunner
from mmrag.models.spec import ModelSpec

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
Precision = Literal["auto", "fp32", "fp16", "bf16", "int8"]

OFFLINE_HINT = (
    "Run with MMRAG_PROFILE=offline to use the fixture models (no download), "
    "or put open_clip weights in a directory and use local:/path"
)
LOCAL_DIR = "local-dir:"


@dataclass(frozen=True)
class EmbedderOptions:
    device: Device = "auto"
    cpu_threads: int = 0  # 0: one per usable core (see mmrag.models.torch_setup)
    batch_size: int = 32
    cache_dir: Path | None = None  # None: Hugging Face's and open_clip's own caches
    # CPU: fp32, bf16 or int8 (auto: per backend and CPU). CUDA: fp16 (auto) or fp32.
    precision: Precision = "auto"
    # CPU runtime; the settings default to auto, the library to torch (no export, no probe).
    backend: BackendSetting = "torch"
    export_dir: Path | None = None  # ONNX exports; None: ~/.cache/mmrag/exports


@dataclass(frozen=True)
class OpenClipSource:
    """Where open_clip finds a model: a built-in architecture plus a pretrained tag or file,
    or a local directory holding ``open_clip_config.json`` and weights."""

    model_name: str  # "ViT-B-32" or "local-dir:/path"
    pretrained: str | None = None

    def describe(self) -> str:
        return f"{self.model_name}" + (f" ({self.pretrained})" if self.pretrained else "")


def cuda_precision(precision: Precision) -> Literal["fp32", "fp16"]:
    """fp32 where asked, else fp16 (bf16 and int8 are the CPU backends' precisions)."""
    if precision in ("bf16", "int8"):
        log.warning("precision %s is for CPU backends: fp16 on CUDA", precision)
    return "fp32" if precision == "fp32" else "fp16"


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
        self._model: Any = None  # the torch model while torch serves; None otherwise
        self._runner: TowerRunner | None = None
        self._tokenizer: Callable[[Sequence[str]], Any] | None = None
        self._device = "cpu"
        self.preprocess_cfg = ImagePreprocess()
        self.serving = Serving("torch", "fp32", "not loaded yet")
        self.threads = 0  # CPU threads set at load; 0 on GPU
        self.dim = 0
        self._exported_bytes = 0

    # -- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        from mmrag.models.torch_setup import configure_cpu_threads, ensure_torchvision

        ensure_torchvision()
        from safetensors import SafetensorError

        self._device = resolve_device(self.requested_device)
        if self._device == "cuda":
            precision = cuda_precision(self.options.precision)
        else:  # fp16 on CPU: CUDA's model, for tests and comparisons
            precision = "fp16" if self.options.precision == "fp16" else "fp32"
        if self._device == "cpu":
            self.threads = configure_cpu_threads(self.options.cpu_threads)
        try:
            model, tokenizer = self._build(precision)
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
        self.preprocess_cfg = preprocess_cfg
        self._tokenizer = tokenizer
        half = precision == "fp16"
        reference = TorchRunner(model, "fp32", preprocess_cfg, self._device, half=half)
        if self._device == "cuda" or half:
            runner: TowerRunner = reference
            self.serving = Serving("torch", precision, f"{self._device}: open_clip's {precision}")
        else:
            runner = self._select(reference, tokenizer)
        self._runner = runner
        self._model = runner.model if isinstance(runner, TorchRunner) else None
        if self._model is None:
            self._exported_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        del reference, model  # a runtime that is not torch frees the torch weights
        self.dim = int(runner.encode_texts(_tokens(tokenizer(["probe"]))).shape[-1])
        log.info(
            "loaded %s on %s (%s/%s, dim %d, %s)",
            self.spec,
            self._device,
            self.serving.backend,
            self.serving.precision,
            self.dim,
            f"{self.threads} threads" if self._device == "cpu" else "GPU",
        )

    def _select(self, reference: TorchRunner, tokenizer: Callable[[Sequence[str]], Any]) -> Any:
        """The first CPU backend that opens and matches torch fp32 on the parity probes."""
        from mmrag.models.clip import parity
        from mmrag.models.clip.backends import candidates, installed
        from mmrag.models.clip.onnx_export import default_export_dir, weights_digest
        from mmrag.models.clip.runtimes import open_runner

        requested = self.options.precision
        order, reason = candidates(
            self.options.backend, "auto" if requested == "fp16" else requested
        )
        export_root = self.options.export_dir or default_export_dir()
        digest: list[str] = []  # hashed once, and only if some candidate needs an export

        def open_choice(choice: Choice) -> TowerRunner:
            if choice.backend != "torch" and not digest:
                digest.append(weights_digest(reference.model))
            weights = digest[0] if digest else ""
            cfg = self.preprocess_cfg
            return open_runner(choice, reference, cfg, self.threads, export_root, weights)

        selected = parity.select(
            order,
            reason,
            reference,
            open_choice,
            lambda choice: installed(choice.backend),
            parity.probe_images(self.preprocess_cfg),
            _tokens(tokenizer(list(parity.PROBE_TEXTS))),
            # auto: the two best-ranked that hold parity race on the probes.
            contenders=2 if self.options.backend == "auto" else 1,
        )
        score = f", cosine to torch fp32 {selected.parity.worst:.5f}" if selected.parity else ""
        why = selected.reason + score
        if selected.refused:
            why += "; refused " + "; ".join(selected.refused)
        self.serving = Serving(selected.choice.backend, selected.choice.precision, why)
        log.info("embedder %s serves with %s: %s", self.spec, selected.choice, why)
        return selected.runner

    def _build(self, precision: str) -> tuple[Any, Callable[[Sequence[str]], Any]]:
        """The open_clip model (on its device, in its precision) and its tokenizer."""
        import open_clip

        name = self.source.model_name
        common: dict[str, Any] = {"device": self._device, "precision": precision}
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
        self._runner = None
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
        return np.stack(prepared)  # normalised by the runner, where it computes

    def _forward_images(self, batch: Any) -> Any:
        assert self._runner is not None
        return self._runner.encode_images(batch)

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
        return _tokens(self._tokenizer(list(texts)))

    def _forward_texts(self, tokens: Any) -> Any:
        assert self._runner is not None
        return self._runner.encode_texts(tokens)

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
        """L2-normalise in fp32 (fp16 norms lose digits)."""
        vectors = np.asarray(features, dtype=np.float32)
        norms = np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors / norms, dtype=np.float32)

    def memory_bytes(self) -> int:
        """The torch weights while torch serves; an exported runtime's are not torch tensors,
        so they are counted as the torch model they replace (a close upper bound)."""
        if self._model is not None or not self.loaded:
            return super().memory_bytes()
        return self._exported_bytes


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


@dataclass(frozen=True)
class Serving:
    """What computes the vectors: recorded with every vector stored, shown by /readyz and
    ``mmrag stats``."""

    backend: str  # torch, onnxruntime, openvino
    precision: str  # fp32, bf16, int8 (CPU); fp16 or fp32 (CUDA)
    reason: str  # why this one: the CPU, the setting, what was refused

    def as_payload(self) -> dict[str, str]:
        return {"backend": self.backend, "precision": self.precision}


def _tokens(tokens: Any) -> Any:
    """open_clip's tokenizers answer a torch LongTensor; the runners take int64 numpy."""
    return np.ascontiguousarray(tokens.numpy(), dtype=np.int64)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
