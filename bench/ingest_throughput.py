"""End-to-end ingest rate against the pure embedding rate of the same images, in one run,
for each embedding backend (``auto`` against ``torch/fp32``, the baseline).

A directory of generated JPEGs is ingested (read, hash, decode, thumbnail, blobs, prepare,
embed, upsert into the edge store) by a ViT-B-32 with random weights: the real model's compute
with no download. The same images, decoded and prepared beforehand, are then embedded with
nothing else going on, before and after the ingest (the machine is shared: bracketing shows
drift). The ratio says how much of the embedder's speed the pipeline keeps (target 0.9); the
ingest rate against torch/fp32's says what the backend gains end to end (target 3x with AMX or
AVX-512 VNNI, 1.5x on AVX2 only). The random weights are the same for every backend (seeded),
and their ONNX exports are cached under ``--export-dir`` after the first run.

    .venv/bin/python -m bench.ingest_throughput [--images 256] [--size 640x480] \
        [--backends torch/fp32,auto/auto]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from bench.common import emit
from mmrag.config import LimitSettings, Settings
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions, OpenClipSource
from mmrag.models.clip.onnx_export import default_export_dir
from mmrag.models.cpu import usable_cores
from mmrag.models.spec import parse_spec
from mmrag.retrieval.blobs import FilesystemBlobStore
from mmrag.retrieval.decode import decode_image, make_thumbnail, sha256_hex
from mmrag.retrieval.ingest import IngestOptions, IngestPipeline, decode_floor
from mmrag.retrieval.items import items_from_paths
from mmrag.retrieval.sources import ServerPaths
from mmrag.retrieval.store_edge import EdgeVectorStore

log = logging.getLogger("bench.ingest_throughput")


def write_images(directory: Path, count: int, size: tuple[int, int]) -> int:
    """Photo-like JPEGs (gradients, shapes, mild noise: 30-80 KB at 640x480); total bytes."""
    rng = np.random.default_rng(0)
    width, height = size
    total = 0
    for index in range(count):
        base = rng.integers(0, 256, (2, 2, 3)).astype(np.uint8)
        image = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            radius = int(rng.integers(10, height // 3))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        noise = rng.normal(0, 6, (height, width, 3))
        pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
        path = directory / f"{index // 64:02d}" / f"img{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, "JPEG", quality=88)
        total += path.stat().st_size
    return total


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def pure_embedding_rate(embedder: ClipEmbedder, prepared: list[Any]) -> tuple[float, float]:
    """(images per wall second, CPU seconds of this process per image)."""
    started, cpu = time.perf_counter(), time.process_time()
    embedder.embed_prepared(prepared)
    cpu_per_image = (time.process_time() - cpu) / len(prepared)
    return len(prepared) / (time.perf_counter() - started), cpu_per_image


def decode_side_cpu(
    embedder: ClipEmbedder, files: list[Path], scratch: Path, limits: LimitSettings
) -> dict[str, float]:
    """CPU ms per image of each step that ingest's decode threads run, on this thread with
    nothing else running (in the pipeline the same steps share the cores with the forward
    pass and take more). Their sum bounds the ratio: forward CPU / (forward + decode side)."""
    blobs = FilesystemBlobStore(scratch / "step-blobs")  # fsynced, as ingest's
    floor = decode_floor(embedder.input_size, limits.thumbnail_px)
    spent: dict[str, float] = {}

    @contextmanager
    def step(name: str) -> Iterator[None]:
        started = time.thread_time()
        yield
        spent[name] = spent.get(name, 0.0) + time.thread_time() - started

    for path in files:
        with step("read_and_hash"):
            data = path.read_bytes()
            digest = sha256_hex(data)
        with step("reduced_decode"):
            decoded = decode_image(data, limits, at_least=floor)
        with step("thumbnail"):
            thumbnail = make_thumbnail(decoded.image, limits.thumbnail_px)
        with step("model_input"):
            embedder.prepare_image(decoded.image)
        with step("blobs"):
            blobs.put("original", digest, data)
            blobs.put("thumbnail", digest, thumbnail)
    per_image = {name: round(seconds / len(files) * 1000, 2) for name, seconds in spent.items()}
    per_image["total"] = round(sum(spent.values()) / len(files) * 1000, 2)
    return per_image


def ingest_once(
    embedder: ClipEmbedder, settings: Settings, args: argparse.Namespace
) -> tuple[float, float, int, int]:
    """Ingest the whole directory into a fresh store.

    (images per wall second, CPU seconds of this process per image, indexed, failed)
    """
    store = EdgeVectorStore(settings.store_dir, settings.store)
    try:
        store.ensure_collection(embedder.dim)  # shard creation is set-up, not ingest
        pipeline = IngestPipeline(
            embedder,
            store,
            FilesystemBlobStore.from_settings(settings),
            settings,
            IngestOptions(
                batch_size=args.batch_size,
                workers=args.workers,
                thumbnail_px=settings.limits.thumbnail_px,
                reduced_decode=not args.full_decode,
                decode_nice=args.nice,
            ),
        )
        items = items_from_paths(
            ServerPaths(settings.allowed_roots, settings.limits), settings.allowed_roots
        )
        cpu = time.process_time()
        report = pipeline.run(items)
        cpu_per_image = (time.process_time() - cpu) / max(1, len(report.indexed))
        assert store.count() == len(report.indexed)
    finally:
        store.close()
    rate = len(report.indexed) / report.elapsed_s
    return rate, cpu_per_image, len(report.indexed), len(report.failed)


def build_embedder(backend: str, batch_size: int, export_dir: Path) -> ClipEmbedder:
    """ViT-B-32, random weights seeded alike for every backend, served by ``backend/precision``."""
    import torch

    name, _, precision = backend.partition("/")
    options = EmbedderOptions(
        device="cpu",
        batch_size=batch_size,
        backend=name,  # type: ignore[arg-type]
        precision=(precision or "auto"),  # type: ignore[arg-type]
        export_dir=export_dir,
    )
    torch.manual_seed(0)
    embedder = ClipEmbedder(
        parse_spec("open_clip:ViT-B-32"), OpenClipSource("ViT-B-32"), options, True
    )
    embedder.load()
    return embedder


def measure(
    embedder: ClipEmbedder, root: Path, scratch: Path, args: argparse.Namespace
) -> dict[str, Any]:
    limits = Settings().limits
    files = sorted(root.rglob("*.jpg"))
    started = time.perf_counter()
    prepared = [
        embedder.prepare_image(decode_image(path.read_bytes(), limits).image) for path in files
    ]
    prepare_ms = (time.perf_counter() - started) / len(files) * 1000
    decode_side = decode_side_cpu(embedder, files, scratch, limits)
    embedder.embed_prepared(prepared[: args.batch_size])  # warm-up: first calls allocate

    # pure, ingest, pure, ingest, pure ...: each ingest is compared with its neighbours,
    # so load from other processes on a shared machine hits both sides alike.
    pure = [pure_embedding_rate(embedder, prepared)]
    ingest: list[tuple[float, float]] = []
    indexed = failed = 0
    serving = embedder.serving
    tag = f"{serving.backend}-{serving.precision}"
    for round_index in range(args.rounds):
        data_dir = scratch / f"data-{tag}-{round_index}"
        settings = Settings(data_dir=data_dir, allowed_roots=[root])
        rate, cpu_per_image, indexed, failed = ingest_once(embedder, settings, args)
        ingest.append((rate, cpu_per_image))
        pure.append(pure_embedding_rate(embedder, prepared))

    ratios = [rate / ((pure[i][0] + pure[i + 1][0]) / 2) for i, (rate, _) in enumerate(ingest)]
    # CPU time per image barely depends on what else runs on a shared machine: it shows the
    # share of the work that is not the forward pass, whatever the wall-clock noise.
    pure_cpu = float(np.median([cpu for _, cpu in pure]))
    ingest_cpu = float(np.median([cpu for _, cpu in ingest]))
    return {
        "serving": f"{serving.backend}/{serving.precision}",
        "why": serving.reason,
        "indexed_per_round": indexed,
        "failed_per_round": failed,
        "ingest_images_per_s": [round(rate, 2) for rate, _ in ingest],
        "pure_embed_images_per_s": [round(rate, 2) for rate, _ in pure],
        "ratio_per_round": [round(ratio, 3) for ratio in ratios],
        "ratio_ingest_to_pure": round(float(np.median(ratios)), 3),
        "cpu_ms_per_image_pure": round(pure_cpu * 1000, 1),
        "cpu_ms_per_image_ingest": round(ingest_cpu * 1000, 1),
        "full_decode_and_prepare_ms_per_image_1_thread": round(prepare_ms, 2),
        "decode_side_cpu_ms_per_image_1_thread": decode_side,
        "ratio_ceiling_from_cpu": round(pure_cpu / (pure_cpu + decode_side["total"] / 1000), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=IngestOptions().workers)
    parser.add_argument("--rounds", type=int, default=2, help="ingest runs, each between two pure")
    parser.add_argument("--nice", type=int, default=IngestOptions().decode_nice)
    parser.add_argument("--full-decode", action="store_true", help="no reduced JPEG decode")
    parser.add_argument(
        "--backends",
        default="torch/fp32,auto/auto",
        help="backend/precision pairs, comma-separated; the first is the baseline",
    )
    parser.add_argument("--export-dir", type=Path, default=default_export_dir())
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.split("x"))
    logging.basicConfig(level=logging.WARNING)

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mmrag-bench-") as scratch:
        root = Path(scratch) / "photos"
        image_bytes = write_images(root, args.images, (width, height))
        for index, backend in enumerate(args.backends.split(",")):
            embedder = build_embedder(backend, args.batch_size, args.export_dir)
            # one directory per entry: `auto` may resolve to a pair that is also listed
            runs = Path(scratch) / f"backend-{index}"
            runs.mkdir()
            results[backend] = measure(embedder, root, runs, args)
            del embedder
    baseline = next(iter(results.values()))
    for measured in results.values():
        measured["ingest_x_baseline"] = round(
            float(np.median(measured["ingest_images_per_s"]))
            / float(np.median(baseline["ingest_images_per_s"])),
            2,
        )
    emit(
        "ingest_throughput",
        {
            "images": args.images,
            "image_size": args.size,
            "mean_jpeg_kb": round(image_bytes / args.images / 1024, 1),
            "model": "ViT-B-32 (random weights)",
            "batch_size": args.batch_size,
            "decode_workers": args.workers or usable_cores(),
            "compute_threads": torch_threads(),
            "reduced_decode": not args.full_decode,
            "decode_nice": args.nice,
            "target_ratio_ingest_to_pure": 0.9,
            "baseline": next(iter(results)),
            "backends": results,
        },
    )


if __name__ == "__main__":
    main()
