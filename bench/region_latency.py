"""Search latency with region vectors against image vectors alone, and storage per image.

Two edge stores of the same ``--sizes`` images (random unit 512-d vectors are enough for
latency): one with image vectors only, one where each image also has ``--regions`` region
vectors (a MaxSim multivector). The same random queries run, top 10, on:

- ``image``: the image vector (the store without regions: the baseline);
- ``image_with_regions``: the image vector of the store that also holds regions;
- ``region``: the region multivector (MaxSim), hits naming their best region;
- ``hybrid_with_regions``: image + BM25 + regions, RRF (BM25 has no captions here).

before and after each store's HNSW build (``optimize()``), and the bytes on disk per image
of each store (allocated blocks, not the sparse files' apparent size).

    .venv/bin/python -m bench.region_latency --sizes 10000          # here
    .venv/bin/python -m bench.region_latency --sizes 10000,100000   # a bigger machine
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import emit, percentiles_ms
from mmrag.config import StoreSettings
from mmrag.retrieval.store import ImagePoint, SparseVector
from mmrag.retrieval.store_edge import EdgeVectorStore

Vectors = npt.NDArray[np.float32]


def unit(rng: np.random.Generator, *shape: int) -> Vectors:
    vectors = rng.standard_normal(shape).astype(np.float32)
    normed: Vectors = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
    return normed


def disk_bytes(root: Path) -> int:
    return sum(
        os.stat(Path(folder) / name).st_blocks * 512
        for folder, _, names in os.walk(root)
        for name in names
    )


def fill(store: EdgeVectorStore, size: int, dim: int, regions: int, seed: int) -> float:
    """Write ``size`` images (and their regions); returns the seconds it took."""
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for start in range(0, size, 1000):
        count = min(1000, size - start)
        vectors = unit(rng, count, dim)
        ids = [f"{start + n:032x}" for n in range(count)]
        store.upsert(
            [
                ImagePoint(i, v, {"n": start + n})
                for n, (i, v) in enumerate(zip(ids, vectors, strict=True))
            ]
        )
        if regions:
            for image_id in ids:
                boxes = [{"box": [0, 0, 8, 8], "label": "x", "score": 0.9}] * regions
                store.set_regions(image_id, unit(rng, regions, dim), boxes)
    return time.perf_counter() - started


def latencies(store: EdgeVectorStore, queries: Vectors, with_regions: bool) -> dict[str, Any]:
    empty = SparseVector([], [])
    arms: dict[str, Any] = {"image": lambda q: store.search(q, "image", 10)}
    if with_regions:
        arms = {
            "image_with_regions": arms["image"],
            "region": lambda q: store.search_regions(q, 10),
            "hybrid_with_regions": lambda q: store.search_hybrid(
                q, "image", empty, 10, region_weight=2.0
            ),
        }
    measured = {}
    for name, call in arms.items():
        call(queries[0])  # warm
        samples = []
        for query in queries:
            started = time.perf_counter()
            call(query)
            samples.append(time.perf_counter() - started)
        measured[name] = percentiles_ms(samples)
    return measured


def one_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="region-latency-"))
    queries = unit(np.random.default_rng(99), args.queries, args.dim)
    result: dict[str, Any] = {"images": size, "regions_per_image": args.regions}
    try:
        for label, regions in (("image_only", 0), ("with_regions", args.regions)):
            store = EdgeVectorStore(root / label, StoreSettings())
            store.ensure_collection(args.dim)
            try:
                write_s = fill(store, size, args.dim, regions, seed=size)
                before = latencies(store, queries, bool(regions))
                build_started = time.perf_counter()
                store.optimize()
                build_s = time.perf_counter() - build_started
                after = latencies(store, queries, bool(regions))
            finally:
                store.close()
            result[label] = {
                "write_s": round(write_s, 2),
                "build_s": round(build_s, 2),
                "brute_force": before,
                "hnsw": after,
                "disk_bytes_per_image": round(disk_bytes(root / label) / size),
            }
        base = result["image_only"]["hnsw"]["image"]["p50_ms"]
        result["p50_ratio_vs_image_only"] = {
            name: round(value["p50_ms"] / base, 2)
            for name, value in result["with_regions"]["hnsw"].items()
        }
        result["region_bytes_per_image"] = (
            result["with_regions"]["disk_bytes_per_image"]
            - result["image_only"]["disk_bytes_per_image"]
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", type=lambda text: [int(n) for n in text.split(",")], default=[10_000]
    )
    parser.add_argument("--regions", type=int, default=5)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    emit("region_latency", {"runs": [one_size(size, args) for size in args.sizes]})


if __name__ == "__main__":
    main()
