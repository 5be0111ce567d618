"""Helpers shared by the benchmarks."""

from __future__ import annotations

import json
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


def emit(name: str, results: dict[str, Any]) -> None:
    """Print the benchmark's one JSON object on stdout."""
    document = {
        "benchmark": name,
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        **results,
    }
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
