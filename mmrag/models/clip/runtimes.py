"""The runtimes that run the CLIP towers: torch (the reference), ONNX Runtime and OpenVINO.

Each takes what the embedder has ready, a uint8 ``N x H x W x 3`` batch of prepared images or
an int64 ``N x context`` batch of tokens, and answers unnormalised float32 features as numpy.
The torch runner normalises on the model's device (a GPU gets the uint8 batch, a quarter of
the bytes); the others in numpy, with the same fp32 arithmetic.
"""

from __future__ import annotations

import copy
import logging
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mmrag.models.clip.backends import Choice, Precision
from mmrag.models.clip.preprocess import ImagePreprocess, normalise_array, normalise_batch

log = logging.getLogger(__name__)

Features = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]
Tokens = npt.NDArray[np.int64]


class TowerRunner(Protocol):
    choice: Choice

    def encode_images(self, pixels: Pixels) -> Features: ...

    def encode_texts(self, tokens: Tokens) -> Features: ...


class TorchRunner:
    """The open_clip model itself: fp32, bf16 autocast, or dynamic int8 image MLPs (CPU); or
    open_clip's fp16 model (``half``, CUDA's default), whose ``choice`` says fp32: only the CPU
    precisions are compared for parity."""

    def __init__(
        self,
        model: Any,
        precision: Precision,
        cfg: ImagePreprocess,
        device: str = "cpu",
        half: bool = False,
    ) -> None:
        import torch

        from mmrag.models.clip.embedder import quantize_mlp_int8

        if precision == "int8":  # quantised in place: a copy keeps the fp32 reference intact
            model = quantize_mlp_int8(copy.deepcopy(model))
        self.model = model
        self.choice = Choice("torch", precision)
        self.cfg = cfg
        self.device = device
        self.dtype = torch.float16 if half else torch.float32

    def _autocast(self) -> AbstractContextManager[Any]:
        import torch

        if self.choice.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def encode_images(self, pixels: Pixels) -> Features:
        import torch

        batch = torch.from_numpy(pixels).to(self.device)
        inputs = normalise_batch(batch, self.cfg).to(dtype=self.dtype)
        with torch.inference_mode(), self._autocast():
            return _numpy(self.model.encode_image(inputs))

    def encode_texts(self, tokens: Tokens) -> Features:
        import torch

        with torch.inference_mode(), self._autocast():
            return _numpy(self.model.encode_text(torch.from_numpy(tokens).to(self.device)))


class OnnxRuntimeRunner:
    """ONNX Runtime's CPU provider over an exported entry (fp32 or dynamic int8)."""

    def __init__(self, entry: Path, precision: Precision, cfg: ImagePreprocess, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its warnings about unused initialisers are noise
        providers = ["CPUExecutionProvider"]
        self.image = ort.InferenceSession(str(entry / "image.onnx"), options, providers=providers)
        self.text = ort.InferenceSession(str(entry / "text.onnx"), options, providers=providers)
        self.choice = Choice("onnxruntime", precision)
        self.cfg = cfg

    def encode_images(self, pixels: Pixels) -> Features:
        # InferenceSession.run is thread-safe: search and ingest may share the session.
        inputs = {"pixels": normalise_array(pixels, self.cfg)}
        return np.asarray(self.image.run(None, inputs)[0], dtype=np.float32)

    def encode_texts(self, tokens: Tokens) -> Features:
        return np.asarray(self.text.run(None, {"tokens": tokens})[0], dtype=np.float32)


class OpenVinoRunner:
    """OpenVINO's CPU plugin reading the fp32 ONNX entry; ``bf16`` is its inference precision
    hint (bf16 matrix units where the CPU has them; fp32 accumulation either way)."""

    def __init__(self, entry: Path, precision: Precision, cfg: ImagePreprocess, threads: int):
        import openvino as ov

        core = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
        }
        self.image = core.compile_model(str(entry / "image.onnx"), "CPU", config)
        self.text = core.compile_model(str(entry / "text.onnx"), "CPU", config)
        self.choice = Choice("openvino", precision)
        self.cfg = cfg

    def encode_images(self, pixels: Pixels) -> Features:
        return _infer(self.image, normalise_array(pixels, self.cfg))

    def encode_texts(self, tokens: Tokens) -> Features:
        return _infer(self.text, tokens)


def _infer(compiled: Any, inputs: npt.NDArray[Any]) -> Features:
    # One request per call: a compiled model's own request is not safe to share between the
    # threads of search and ingest, and creating one costs microseconds.
    request = compiled.create_infer_request()
    request.infer({0: inputs})
    return np.array(request.get_output_tensor(0).data, dtype=np.float32)


def _numpy(features: Any) -> Features:
    return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)


def open_runner(
    choice: Choice,
    reference: TorchRunner,
    cfg: ImagePreprocess,
    threads: int,
    export_root: Path,
    weights: str,
) -> TowerRunner:
    """The runner for ``choice``, exporting the reference's model (whose weights hash to
    ``weights``) first where it needs ONNX.
    Raises whatever the library raises when it cannot: the caller logs it and moves on."""
    if choice.backend == "torch":
        if choice.precision == "fp32":
            return reference
        return TorchRunner(reference.model, choice.precision, cfg)
    from mmrag.models.clip.onnx_export import exported_towers
    from mmrag.models.cpu import cpu_flags

    size = (cfg.height, cfg.width)
    if choice.backend == "onnxruntime":
        if choice.precision == "int8":
            # Without VNNI, ONNX Runtime's u8s8 kernels can saturate: 7-bit weights avoid it.
            reduce_range = "avx512_vnni" not in cpu_flags() and "avx_vnni" not in cpu_flags()
            entry = exported_towers(
                reference.model,
                size,
                "int8",
                export_root,
                reduce_range=reduce_range,
                weights=weights,
            )
        else:
            entry = exported_towers(reference.model, size, "fp32", export_root, weights=weights)
        return OnnxRuntimeRunner(entry, choice.precision, cfg, threads)
    entry = exported_towers(reference.model, size, "fp32", export_root, weights=weights)
    return OpenVinoRunner(entry, choice.precision, cfg, threads)
