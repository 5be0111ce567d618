"""Helpers shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    values = np.asarray(samples_s) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
    }


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# The CPU features that decide which kernels run (this project's machines are sometimes an
# AVX2-only AMD CPU, sometimes an Intel one with AVX-512 and AMX): figures compare only
# between runs that name the same ones.
_KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_description() -> dict[str, Any]:
    """The CPU's model name, core count and the kernel-relevant flags of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name", platform.processor()),
        "cores": os.cpu_count(),
        "flags": [flag for flag in _KERNEL_FLAGS if flag in flags],
    }


def emit(name: str, results: dict[str, Any]) -> None:
    """Print the benchmark's one JSON object on stdout."""
    document = {
        "benchmark": name,
        "machine": {"python": platform.python_version(), "cpu": cpu_description()},
        **results,
    }
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
