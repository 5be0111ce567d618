"""ViT-B-32 image-embedding throughput on CPU, against the two yardsticks that matter.

- ``gemm``: this machine's fp32 matrix-multiply rate (``torch.mm`` of large square matrices,
  same thread count), divided by the model's FLOPs per image (counted with torch's
  FlopCounterMode, about 8.7 GFLOP: the usual "4.4 GFLOPs" of ViT-B/32 counts multiply-adds).
  A ViT forward is almost all GEMM, so this is the practical ceiling.
- ``naive``: what a newcomer writes: open_clip's own preprocess transform and
  ``model.encode_image`` one image at a time, in the same run on the same images.

Our embedder is measured end to end (PIL photo -> unit vectors) at fp32 and with int8 MLPs,
and its forward alone. The weights are random (no download): the compute is the real model's.
A few levers (threads, batch size, oneDNN, inference_mode vs no_grad) are timed on the forward
alone. The machine may be shared: every figure is the best of ``--repeats`` runs and the
samples are reported too.

Then every embedding backend and precision (``--backends``) against torch fp32 in the same run:
image tower images/s (and CPU ms per image, steadier on a shared machine), text tower batch-1
query latency p50/p99, the lowest cosine to torch fp32's vectors, and retrieval accuracy on the
shapes world with the fixture CLIP (bench/backend_accuracy.py), next to torch fp32's.

    .venv/bin/python -m bench.embed_throughput [--images 64] [--threads N] [--rounds 2] \
        [--backends torch/fp32,onnxruntime/int8,...] [--only-backends] [--accuracy-scenes 300]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.backend_accuracy import accuracy, scenes
from bench.common import emit, percentiles_ms, timed
from mmrag.models.clip.backends import check_choice
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions, OpenClipSource
from mmrag.models.clip.onnx_export import default_export_dir
from mmrag.models.cpu import usable_cores
from mmrag.models.spec import parse_spec
from mmrag.models.torch_setup import configure_cpu_threads, ensure_torchvision

log = logging.getLogger("bench.embed_throughput")

MODEL = "ViT-B-32"
GEMM_SIZE = 2048


def photos(count: int) -> list[Image.Image]:
    """Real photos of mixed sizes (scikit-image's, 300-1000 px), cycled to ``count``."""
    import skimage.data

    sources = [
        skimage.data.astronaut(),
        skimage.data.coffee(),
        skimage.data.chelsea(),
        skimage.data.rocket(),
        skimage.data.hubble_deep_field(),
    ]
    return [Image.fromarray(sources[index % len(sources)]) for index in range(count)]


def rate(run: Callable[[], object], items: int) -> float:
    """Items per second of one timed run."""
    return items / timed(run)


def gemm_gflops(threads: int, repeats: int = 3) -> float:
    """fp32 GFLOP/s of ``torch.mm`` on square matrices, best of ``repeats``."""
    import torch

    configure_cpu_threads(threads)
    a = torch.randn(GEMM_SIZE, GEMM_SIZE)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE)
    torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * GEMM_SIZE**3 / best / 1e9


def flops_per_image(model: Any) -> float:
    """GFLOP of one image forward, counted by torch (2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    # The fused multi-head-attention fast path hides its projections from the counter.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model.encode_image(torch.zeros(1, 3, 224, 224))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return float(counter.get_total_flops()) / 1e9


BACKENDS = (
    "torch/fp32,torch/int8,torch/bf16,onnxruntime/fp32,onnxruntime/int8,openvino/fp32,"
    "openvino/bf16,auto/auto"
)


def options_for(pair: str, threads: int, batch_size: int, export_dir: Any) -> EmbedderOptions:
    backend, _, precision = pair.partition("/")
    return EmbedderOptions(
        device="cpu",
        cpu_threads=threads,
        batch_size=batch_size,
        backend=backend,  # type: ignore[arg-type]
        precision=precision or "auto",  # type: ignore[arg-type]
        export_dir=export_dir,
    )


def build_embedder(
    threads: int, batch_size: int, int8: bool, pair: str = "", export_dir: Any = None
) -> ClipEmbedder:
    import torch

    torch.manual_seed(0)  # same random weights for every precision and backend
    pair = pair or ("torch/int8" if int8 else "torch/fp32")
    options = options_for(pair, threads, batch_size, export_dir)
    embedder = ClipEmbedder(
        parse_spec(f"open_clip:{MODEL}"), OpenClipSource(MODEL), options, random_weights=True
    )
    embedder.load()
    return embedder


def naive_loop(threads: int) -> Callable[[Sequence[Image.Image]], list[Any]]:
    """open_clip's README way, one image at a time."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=None)
    model.eval()
    configure_cpu_threads(threads)

    def run(images: Sequence[Image.Image]) -> list[Any]:
        out = []
        with torch.no_grad():
            for image in images:
                features = model.encode_image(preprocess(image).unsqueeze(0))
                out.append(features / features.norm(dim=-1, keepdim=True))
        return out

    return run


def levers(embedder: ClipEmbedder, prepared: Sequence[Any], threads: int) -> dict[str, float]:
    """Forward-only images/s under each lever, one at a time (one run each, after warm-up)."""
    import torch

    from mmrag.models.clip.preprocess import normalise_batch

    pixels = torch.from_numpy(embedder.preprocess_images(prepared))
    batch = normalise_batch(pixels, embedder.preprocess_cfg)
    model = embedder._model
    results: dict[str, float] = {}

    def forward(size: int, grad_mode: Callable[[], Any] = torch.inference_mode) -> None:
        with grad_mode():
            for start in range(0, len(batch), size):
                model.encode_image(batch[start : start + size])

    forward(8)  # warm-up: oneDNN builds its kernels for new shapes once
    for count in sorted({1, threads}):
        configure_cpu_threads(count)
        for size in (8, 32):
            key = f"threads={count},batch={size}"
            results[key] = round(rate(lambda s=size: forward(s), len(batch)), 2)  # type: ignore[misc]
    configure_cpu_threads(threads)
    results["no_grad_instead_of_inference_mode"] = round(
        rate(lambda: forward(32, torch.no_grad), len(batch)), 2
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a TF32-on-Intel-GPU notice
        with torch.backends.mkldnn.flags(enabled=False):
            results["mkldnn_disabled"] = round(rate(lambda: forward(32), len(batch)), 2)
    return results


def _cosine(a: Any, b: Any) -> float:
    return round(float(np.sum(a * b, axis=1).min()), 5)


def backend_section(
    args: argparse.Namespace, images: Sequence[Image.Image], threads: int
) -> dict[str, Any]:
    """Every runnable backend/precision against torch fp32 (the first entry), one at a time."""
    from mmrag.models.fixtures import default_cache_dir
    from mmrag.models.registry import create_embedder

    pairs = ["torch/fp32"] + [p for p in args.backends.split(",") if p and p != "torch/fp32"]
    runnable = [p for p in pairs if check_choice(*p.split("/")) is None]
    queries = [f"a photo of a {word}" for word in ("dog", "cat", "red car", "beach", "city")]
    world, single = scenes(args.accuracy_scenes) if args.accuracy_scenes else ([], [])
    reference: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for pair in runnable:
        embedder = build_embedder(threads, args.batch_size, False, pair, args.export_dir)
        prepared = [embedder.prepare_image(image) for image in images]
        embedder.embed_prepared(prepared[: args.batch_size])  # warm-up
        image_vectors = embedder.embed_prepared(prepared)
        text_vectors = embedder.embed_texts(queries)
        if not reference:
            reference = {"images": image_vectors, "texts": text_vectors}
        rates, cpu_ms = [], []
        for _ in range(args.rounds):
            cpu = time.process_time()
            rates.append(rate(partial(embedder.embed_prepared, prepared), len(prepared)))
            cpu_ms.append((time.process_time() - cpu) / len(prepared) * 1000)
        latencies = []
        for index in range(args.text_queries):
            query = queries[index % len(queries)]
            latencies.append(timed(partial(embedder.embed_texts, [query])))
        entry: dict[str, Any] = {
            "serving": f"{embedder.serving.backend}/{embedder.serving.precision}",
            "why": embedder.serving.reason,
            "image_images_per_s_per_round": [round(r, 2) for r in rates],
            "image_cpu_ms_per_image": round(float(np.median(cpu_ms)), 1),
            "text_batch1": percentiles_ms(latencies),
            "min_cosine_to_torch_fp32": {
                "images": _cosine(image_vectors, reference["images"]),
                "texts": _cosine(text_vectors, reference["texts"]),
            },
        }
        del embedder
        if world:
            fixture = create_embedder(
                "fixture:shapes-clip",
                replace(
                    options_for(pair, threads, 64, args.export_dir), cache_dir=default_cache_dir()
                ),
            )
            entry["fixture_clip_accuracy"] = accuracy(fixture, world, single)
            entry["fixture_clip_serving"] = f"{fixture.serving.backend}/{fixture.serving.precision}"
        results[pair] = entry
        log.info("%s: %s", pair, entry)
    base = results["torch/fp32"]
    for entry in results.values():
        entry["image_x_torch_fp32_cpu"] = round(
            base["image_cpu_ms_per_image"] / entry["image_cpu_ms_per_image"], 2
        )
        entry["text_p50_x_torch_fp32"] = round(
            base["text_batch1"]["p50_ms"] / entry["text_batch1"]["p50_ms"], 2
        )
        if "fixture_clip_accuracy" in entry:
            entry["accuracy_points_vs_torch_fp32"] = {
                task: {
                    metric: round(value - base["fixture_clip_accuracy"][task][metric], 2)
                    for metric, value in scores.items()
                }
                for task, scores in entry["fixture_clip_accuracy"].items()
            }
    skipped = {p: check_choice(*p.split("/")) for p in pairs if p not in runnable}
    return {
        "backends": results,
        "skipped": skipped,
        "accuracy_scenes": args.accuracy_scenes,
        "text_queries": args.text_queries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=32, help="images per timed run")
    parser.add_argument("--naive-images", type=int, default=12, help="fewer: it is slow")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="0: usable cores")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-levers", action="store_true", help="skip the lever sweep")
    parser.add_argument("--backends", default=BACKENDS, help="backend/precision pairs")
    parser.add_argument("--only-backends", action="store_true", help="skip gemm, naive, levers")
    parser.add_argument("--text-queries", type=int, default=50, help="batch-1 latency samples")
    parser.add_argument("--accuracy-scenes", type=int, default=300, help="0: no accuracy")
    parser.add_argument("--export-dir", type=Path, default=default_export_dir())
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ensure_torchvision()
    import torch

    threads = args.threads or usable_cores()
    images = photos(args.images)
    started = time.perf_counter()
    if args.only_backends:
        section = backend_section(args, images, threads)
        emit(
            "embed_throughput",
            {
                "model": f"{MODEL} (random weights, 224 px); accuracy: fixture:shapes-clip",
                "threads": threads,
                "images": len(images),
                "batch_size": args.batch_size,
                **section,
                "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
                "seconds": round(time.perf_counter() - started, 1),
            },
        )
        return

    fp32 = build_embedder(threads, args.batch_size, int8=False)
    int8 = build_embedder(threads, args.batch_size, int8=True)
    naive = naive_loop(threads)
    gflop_per_image = flops_per_image(fp32._model)
    prepared = [fp32.prepare_image(image) for image in images]
    agreement = np.sum(fp32.embed_prepared(prepared) * int8.embed_prepared(prepared), axis=1)
    int8.embed_images(images[:2])
    naive(images[:2])  # warm-ups

    # Rounds, each measuring everything back to back: a shared machine's load drifts by the
    # minute, so ratios are taken within a round, never across rounds.
    rounds: list[dict[str, float]] = []
    for _ in range(args.rounds):
        configure_cpu_threads(threads)
        gemm = gemm_gflops(threads)
        measured = {
            "gemm_gflops": gemm,
            "gemm_ceiling": gemm / gflop_per_image,
            "ours_fp32": rate(lambda: fp32.embed_images(images), len(images)),
            "ours_fp32_forward_only": rate(lambda: fp32.embed_prepared(prepared), len(images)),
            "ours_int8": rate(lambda: int8.embed_images(images), len(images)),
            "naive": rate(lambda: naive(images[: args.naive_images]), args.naive_images),
        }
        rounds.append({key: round(value, 2) for key, value in measured.items()})
        log.info("round %d: %s", len(rounds), rounds[-1])
    gemm_one_thread = gemm_gflops(1) if threads != 1 else None
    lever_results = {} if args.no_levers else levers(fp32, prepared, threads)

    def summary(key: str) -> dict[str, Any]:
        return {
            "best_per_s": max(r[key] for r in rounds),
            "per_round": [r[key] for r in rounds],
            "of_gemm_ceiling_per_round": [round(r[key] / r["gemm_ceiling"], 3) for r in rounds],
            "x_naive_per_round": [round(r[key] / r["naive"], 2) for r in rounds],
        }

    emit(
        "embed_throughput",
        {
            "model": f"{MODEL} (random weights, 224 px)",
            "threads": threads,
            "usable_cores": usable_cores(),
            "torch": torch.__version__,
            "images": len(images),
            "batch_size": args.batch_size,
            "gflop_per_image": round(gflop_per_image, 2),
            "gemm_gflops_per_round": [r["gemm_gflops"] for r in rounds],
            "gemm_gflops_one_thread": round(gemm_one_thread, 1) if gemm_one_thread else None,
            "gemm_ceiling_images_per_s_per_round": [r["gemm_ceiling"] for r in rounds],
            "naive_open_clip_loop": {
                "best_per_s": max(r["naive"] for r in rounds),
                "per_round": [r["naive"] for r in rounds],
                "images": args.naive_images,
            },
            "ours_fp32": summary("ours_fp32"),
            "ours_fp32_forward_only": summary("ours_fp32_forward_only"),
            "ours_int8": summary("ours_int8"),
            "int8_vs_fp32_min_cosine": round(float(agreement.min()), 5),
            "levers_forward_images_per_s": lever_results,
            **backend_section(args, images, threads),
            "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
