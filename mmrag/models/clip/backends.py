"""Which runtime serves the CLIP towers, in which precision: the candidates, in order.

``backend`` is ``torch``, ``onnxruntime``, ``openvino`` or ``auto``; ``precision`` is ``fp32``,
``bf16``, ``int8`` or ``auto``. A concrete pair is one candidate; ``auto`` in either expands to
a list ordered by what this CPU runs fastest (measured in bench/embed_throughput.py and in the
issue that asked for this, ViT-B-32 on 2 threads):

- AMX or AVX-512 BF16: OpenVINO bf16 (129 images/s on AMX against torch fp32's 30), then ONNX
  Runtime dynamic int8 (114);
- otherwise (AVX-512 VNNI or AVX2 only): ONNX Runtime dynamic int8 first (VNNI and AVX2 both
  have int8 dot-product kernels in ONNX Runtime's MLAS), then OpenVINO fp32.

Every list ends with torch fp32, the reference that parity is checked against: whatever fails
(library missing, export failing, parity below its bound) falls through to it. This module
imports no runtime library: settings validation calls it in every process.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal, get_args

from mmrag.models.cpu import cpu_flags

Backend = Literal["torch", "onnxruntime", "openvino"]
BackendSetting = Literal["auto", "torch", "onnxruntime", "openvino"]
Precision = Literal["fp32", "bf16", "int8"]
PrecisionSetting = Literal["auto", "fp32", "bf16", "int8"]

BACKENDS: tuple[Backend, ...] = get_args(Backend)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

# The precisions each backend runs on CPU. ONNX Runtime's CPU provider has no fast bf16
# kernels (it would cast back to fp32 op by op); OpenVINO int8 needs a calibrated model (NNCF),
# which we do not make: its fp32 ONNX read with a bf16 inference hint is its fast path.
SUPPORTED: dict[Backend, tuple[Precision, ...]] = {
    "torch": ("fp32", "bf16", "int8"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16"),
}
# The Python package that each non-torch backend imports.
MODULES: dict[Backend, str] = {
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
}
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@dataclass(frozen=True)
class Choice:
    backend: Backend
    precision: Precision

    def __str__(self) -> str:
        return f"{self.backend}/{self.precision}"


REFERENCE = Choice("torch", "fp32")


def has_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU computes bf16 natively (elsewhere bf16 is emulated, slower than fp32)."""
    return bool((cpu_flags() if flags is None else flags) & BF16_FLAGS)


def installed(backend: Backend) -> bool:
    """Whether the backend's library can be imported here (found, not imported)."""
    try:
        return importlib.util.find_spec(MODULES[backend]) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules: treated as absent
        return False


def check_choice(backend: BackendSetting, precision: PrecisionSetting) -> str | None:
    """Why this machine cannot run the configured pair, or None when it can (or may, for
    ``auto``, which falls back instead). Settings call this so a bad pair stops the service."""
    if backend == "auto":
        return None
    if precision != "auto" and precision not in SUPPORTED[backend]:
        runs = ", ".join(SUPPORTED[backend])
        return f"backend {backend} does not run {precision} (it runs {runs})"
    if not installed(backend):
        return f"backend {backend} is not installed (the Python package {MODULES[backend]})"
    if precision == "bf16" and not has_bf16():
        return "precision bf16 needs a CPU with AMX or AVX-512 BF16, and this one has neither"
    return None


def candidates(
    backend: BackendSetting, precision: PrecisionSetting, flags: frozenset[str] | None = None
) -> tuple[list[Choice], str]:
    """The pairs to try in order (torch fp32 last) and one line saying why this order."""
    flags = cpu_flags() if flags is None else flags
    bf16 = has_bf16(flags)
    if bf16:
        ranked = [
            Choice("openvino", "bf16"),
            Choice("onnxruntime", "int8"),
            Choice("openvino", "fp32"),
            Choice("onnxruntime", "fp32"),
        ]
        why = "the CPU has " + "/".join(sorted(flags & BF16_FLAGS)) + ": bf16 first"
    else:
        ranked = [
            Choice("onnxruntime", "int8"),
            Choice("openvino", "fp32"),
            Choice("onnxruntime", "fp32"),
        ]
        vnni = "avx512_vnni" in flags
        why = f"the CPU has {'AVX-512 VNNI' if vnni else 'no AVX-512 BF16/AMX'}: int8 first"
    if backend != "auto":
        ranked = [choice for choice in ranked if choice.backend == backend]
        if precision == "auto":
            preferred = [choice for choice in ranked if choice.precision != "bf16" or bf16]
            ranked = preferred or [Choice(backend, "fp32")]
        else:
            ranked = [Choice(backend, precision)]
        why = f"configured {backend}/{precision}"
        if backend == "torch":
            ranked = [Choice("torch", "fp32" if precision == "auto" else precision)]
    elif precision != "auto":
        ranked = [choice for choice in ranked if choice.precision == precision]
        if precision != "fp32":
            ranked.append(Choice("torch", precision))
        why = f"configured precision {precision}; " + why
    ordered = [choice for choice in ranked if choice != REFERENCE]
    return [*ordered, REFERENCE], why
