"""Captioning and grounding throughput of the worker's executor: micro-batching against one
image per forward pass, in one run, on the same images.

Workload: ``N`` synthetic shapes scenes (held-out seeds) stored as PNG originals in a
temporary blob store. ``--concurrency`` client threads (16, a worker's default) send ``N``
single-image tasks, each thread its next task as soon as the last one answers, as the API's
requests arrive at a worker: a closed loop that keeps that many requests in flight. Every
task goes through :class:`~mmrag.workers.executor.ToolExecutor` ``.run``, the code a Celery
worker and the embedded runner both run (blob read, decode, batcher, adapter).

Each model is measured in two configurations, one after the other, each with its own
executor: ``micro_batched`` (``workers.batch_max`` 16, ``batch_window_ms`` 10, the defaults)
and ``one_per_pass`` (``batch_max`` 1: every image its own forward pass, the baseline). The
model is loaded and warmed with a few tasks first: neither load time nor the first forward
passes are counted. Reported: images/s over the whole burst, p50/p99 latency of a request
(queueing behind the others included), the forward passes run and the mean batch they formed,
and ``speedup`` = micro-batched images/s over one-per-pass images/s. Every result is checked
(an error envelope aborts the run).

The fixture models are also measured through the distributed mode's real path (``celery``):
the same tasks sent with :class:`~mmrag.workers.runner.CeleryRunner` over a local Redis to an
``mmrag worker`` process (threads pool, ``--concurrency`` threads), started afresh for each of
three configurations: ``micro_batched`` (the defaults: the API merges the requests that wait
together into one task of up to ``workers.send_batch_max`` 16 images, and the worker's
micro-batcher batches up to 16), ``worker_batched`` (``send_batch_max`` 1: every request its
own task, batches formed only in the worker, the path before merging) and ``one_per_pass``
(both 1: the baseline). Reported besides images/s and latencies: ``task_messages`` sent
through Redis and the worker's ``forward_passes`` (asked of the worker with the
``mmrag.stats`` task), so ``mean_images_per_message`` and ``mean_batch_size``; ``speedup``
is ``micro_batched`` over ``one_per_pass``, ``worker_batched_speedup`` the older path's.

Models, per tool (``caption``; ``ground`` with the phrase of a shape in the scene):

- ``fixture``: the fixture models (``fixture:shapes-vlm``, ``fixture:shapes-grounding``) on
  64 px scenes, generating up to ``models.max_new_tokens`` (48) tokens; built into the fixture
  cache first when missing (minutes, not counted);
- ``realistic``: released architectures at their real sizes with random weights (see
  ``bench/realistic_models.py``) on 512 px scenes: BLIP base captioning, capped at
  ``REALISTIC_CAPTION_TOKENS`` new tokens (random weights almost never stop early, so captions
  are that long), and OWL-ViT base patch 32. The JSON names configs, parameter counts, image
  sizes and token caps.

The machine may be shared: absolute figures are noisy; the ratio within a run is the result.
On a busy CPU, ``OMP_WAIT_POLICY=PASSIVE`` in the environment keeps torch's thread pool from
collapsing (see ``mmrag.models.torch_setup.configure_cpu_threads``).

    .venv/bin/python -m bench.tool_throughput [--quick] [--only fixture-caption,...]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import emit, percentiles_ms
from bench.realistic_models import blip_base_captioner, owlvit_base_patch32
from mmrag.config import Settings
from mmrag.models.base import resolve_device
from mmrag.models.fixtures.shapes import DEFAULT_SIZE, HELD_OUT_SEEDS, ShapeScene, generate_scene
from mmrag.retrieval.blobs import FilesystemBlobStore
from mmrag.testing.celery_worker import CeleryWorker, settings_env
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.celery_app import STATS_TASK, queue_name
from mmrag.workers.executor import ToolExecutor
from mmrag.workers.protocol import (
    TOOL_QUEUES,
    ItemResult,
    QueueName,
    ToolItem,
    ToolName,
    ToolTask,
    raise_if_error,
)
from mmrag.workers.runner import CeleryRunner

log = logging.getLogger("bench.tool_throughput")

CONCURRENCY = 16
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "micro_batched": {"batch_max": 16, "batch_window_ms": 10.0},
    "one_per_pass": {"batch_max": 1, "batch_window_ms": 0.0},
}
# Through the queue, ``send_batch_max`` is what the API merges into one task: 16 (the
# default) sends the requests that wait together as one task; 1 sends each request as its
# own task, the worker's micro-batcher alone forming batches (the path before merging).
CELERY_CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "micro_batched": {**CONFIGURATIONS["micro_batched"], "send_batch_max": 16},
    "worker_batched": {**CONFIGURATIONS["micro_batched"], "send_batch_max": 1},
    "one_per_pass": {**CONFIGURATIONS["one_per_pass"], "send_batch_max": 1},
}
WARMUP_TASKS = 4
# A short caption's length. The cap keeps the run short on CPUs, where BLIP base takes about
# 1 s an image (0.7 s of it the 384 px vision tower) at 8 tokens.
REALISTIC_CAPTION_TOKENS = 12
REALISTIC_IMAGE_PX = 512
RESULT_KEYS: dict[ToolName, str] = {"caption": "caption", "ground": "boxes"}
# What a client waits for one task through the queue, model load in the warm-up included.
CELERY_TIMEOUT_S = 600.0

RunTask = Callable[[ToolTask], list[ItemResult]]


@dataclass(frozen=True)
class Case:
    name: str
    tool: ToolName
    # The spec, or a builder that writes a model directory and describes it (realistic models).
    spec: str | Callable[[Path], dict[str, Any]]
    images: int
    image_px: int
    max_new_tokens: int | None = None  # None: the setting's default
    through_celery: bool = False  # also through Redis and a real worker process


def cases(quick: bool) -> list[Case]:
    fixture_images = 128 if quick else 512
    realistic_images = 24 if quick else 64
    return [
        Case(
            "fixture-caption",
            "caption",
            "fixture:shapes-vlm",
            fixture_images,
            DEFAULT_SIZE,
            through_celery=True,
        ),
        Case(
            "fixture-ground",
            "ground",
            "fixture:shapes-grounding",
            fixture_images,
            DEFAULT_SIZE,
            through_celery=True,
        ),
        Case(
            "realistic-caption",
            "caption",
            blip_base_captioner,
            realistic_images,
            REALISTIC_IMAGE_PX,
            max_new_tokens=REALISTIC_CAPTION_TOKENS,
        ),
        Case(
            "realistic-ground", "ground", owlvit_base_patch32, realistic_images, REALISTIC_IMAGE_PX
        ),
    ]


def store_scenes(blobs: FilesystemBlobStore, scenes: Sequence[ShapeScene]) -> list[str]:
    """Each scene as a PNG original; its SHA-256, in order."""
    shas = []
    for scene in scenes:
        out = io.BytesIO()
        scene.image.save(out, "PNG")
        data = out.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        blobs.put("original", sha, data)
        shas.append(sha)
    return shas


def tasks_for(
    case: Case, spec: str, scenes: Sequence[ShapeScene], shas: Sequence[str]
) -> list[ToolTask]:
    """One single-image task per scene; grounding asks for a shape the scene holds."""
    items = [
        ToolItem(sha256=sha, phrases=(f"the {scene.shapes[0].phrase}",))
        if case.tool == "ground"
        else ToolItem(sha256=sha)
        for scene, sha in zip(scenes, shas, strict=True)
    ]
    return [ToolTask(tool=case.tool, model=spec, items=(item,)) for item in items]


def settings_for(root: Path, case: Case, spec: str | None = None, **workers: Any) -> Settings:
    """The settings of one configuration, serving ``spec``; the blob store is the data dir's,
    which a worker process started with the same data dir reads too."""
    models: dict[str, Any] = {"allowed": [spec] if spec else []}
    if case.max_new_tokens is not None:
        models["max_new_tokens"] = case.max_new_tokens
    return Settings(data_dir=root / "data", models=models, workers=workers)


def run_burst(
    call: RunTask, tasks: Sequence[ToolTask], concurrency: int
) -> tuple[float, list[float]]:
    """Run every task from ``concurrency`` client threads; wall time and each task's latency."""

    def request(task: ToolTask) -> float:
        start = time.perf_counter()
        (result,) = call(task)
        latency = time.perf_counter() - start
        raise_if_error(result)  # a bench of error envelopes would measure nothing
        if RESULT_KEYS[task.tool] not in result:
            raise RuntimeError(f"{task.tool} result without {RESULT_KEYS[task.tool]}: {result}")
        return latency

    with ThreadPoolExecutor(concurrency, thread_name_prefix="client") as clients:
        start = time.perf_counter()
        latencies = list(clients.map(request, tasks))
        return time.perf_counter() - start, latencies


def measure(
    call: RunTask,
    tasks: Sequence[ToolTask],
    concurrency: int,
    forward_passes: Callable[[], int] | None = None,
    tasks_sent: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Warm up with a few tasks (not counted), then time the burst. ``forward_passes``
    counts the passes the batcher ran so far (in this process or the worker's);
    ``tasks_sent`` the task messages sent through the queue so far."""
    run_burst(call, tasks[:WARMUP_TASKS], concurrency)
    passes_before = forward_passes() if forward_passes else 0
    sent_before = tasks_sent() if tasks_sent else 0
    elapsed, latencies = run_burst(call, tasks, concurrency)
    measured: dict[str, Any] = {
        "images_per_s": round(len(tasks) / elapsed, 3),
        "wall_s": round(elapsed, 2),
        **percentiles_ms(latencies),
    }
    if forward_passes is not None:
        passes = forward_passes() - passes_before
        measured["forward_passes"] = passes
        measured["mean_batch_size"] = round(len(tasks) / passes, 2)
    if tasks_sent is not None:
        sent = tasks_sent() - sent_before
        measured["task_messages"] = sent
        measured["mean_images_per_message"] = round(len(tasks) / sent, 2)
    return measured


def in_process(
    case: Case, spec: str, tasks: Sequence[ToolTask], root: Path, concurrency: int
) -> dict[str, Any]:
    """Both configurations on a :class:`ToolExecutor` in this process."""
    import torch

    report: dict[str, Any] = {}
    for label, batching in CONFIGURATIONS.items():
        settings = settings_for(root, case, spec, **batching)
        executor = ToolExecutor(settings, FilesystemBlobStore.from_settings(settings))
        try:
            log.info("%s in process: %s, %d images", case.name, label, len(tasks))
            started = time.perf_counter()
            executor.preload(spec)  # for a fixture, a first build too
            load_s = round(time.perf_counter() - started, 1)
            report["weights_mb"] = round(executor.adapter(spec).memory_bytes() / 2**20, 1)
            report["device"] = resolve_device(settings.models.device)
            report["torch_threads"] = torch.get_num_threads()  # set by the adapter's load
            if case.tool == "caption":
                report["max_new_tokens"] = executor.options().max_new_tokens
            measured = measure(executor.run, tasks, concurrency, executor.batchers.batches_run)
            report[label] = {**batching, "load_s": load_s, **measured}
        finally:
            executor.close()
    report["speedup"] = speedup(report)
    return report


def through_celery(
    case: Case, tasks: Sequence[ToolTask], root: Path, concurrency: int
) -> dict[str, Any]:
    """Both configurations through Redis and a real ``mmrag worker`` process (threads pool,
    ``concurrency`` threads), started afresh for each; the model loads during the warm-up."""
    report: dict[str, Any] = {"worker_concurrency": concurrency}
    queue = TOOL_QUEUES[case.tool]
    with RedisServer(root / "redis") as redis_server:
        for label, batching in CELERY_CONFIGURATIONS.items():
            settings = settings_for(
                root, case, tasks[0].model, mode="celery", broker_url=redis_server.url, **batching
            )
            env = settings_env(
                {
                    "MMRAG_DATA_DIR": str(settings.data_dir),
                    "MMRAG_WORKERS__MODE": "celery",
                    "MMRAG_WORKERS__BROKER_URL": redis_server.url,
                    "MMRAG_WORKERS__BATCH_MAX": str(batching["batch_max"]),
                    "MMRAG_WORKERS__BATCH_WINDOW_MS": str(batching["batch_window_ms"]),
                    "MMRAG_MODELS__MAX_NEW_TOKENS": str(settings.models.max_new_tokens),
                    "MMRAG_MODELS__ALLOWED": json.dumps(settings.models.allowed),
                }
            )
            log.info("%s through celery: %s, %d images", case.name, label, len(tasks))
            worker = CeleryWorker(
                env,
                redis_server.url,
                root / f"worker-{label}.log",
                (queue,),
                concurrency=concurrency,
            )
            runner = CeleryRunner(settings)
            try:
                with worker:
                    report[label] = {
                        **batching,
                        **measure(
                            partial(runner.run, timeout_s=CELERY_TIMEOUT_S),
                            tasks,
                            concurrency,
                            partial(worker_forward_passes, runner, queue),
                            partial(messages_sent, runner),
                        ),
                    }
            finally:
                runner.close()
    report["speedup"] = speedup(report)
    report["worker_batched_speedup"] = speedup(report, "worker_batched")
    return report


def messages_sent(runner: CeleryRunner) -> int:
    """The task messages ``runner`` has sent so far (merged requests count once)."""
    return runner.coalescer.tasks_sent


def worker_forward_passes(runner: CeleryRunner, queue: QueueName) -> int:
    """The forward passes the worker serving ``queue`` has run so far."""
    sent = runner.app.send_task(STATS_TASK, queue=queue_name(queue))
    return int(sent.get(timeout=60)["forward_passes"])


def speedup(report: dict[str, Any], batched_label: str = "micro_batched") -> float:
    """Batched (``batched_label``) images/s over one-per-pass images/s."""
    batched = float(report[batched_label]["images_per_s"])
    return round(batched / float(report["one_per_pass"]["images_per_s"]), 2)


def run_case(case: Case, root: Path, concurrency: int) -> dict[str, Any]:
    settings = settings_for(root, case)
    scenes = [
        generate_scene(HELD_OUT_SEEDS.start + index, case.image_px) for index in range(case.images)
    ]
    shas = store_scenes(FilesystemBlobStore.from_settings(settings), scenes)
    report: dict[str, Any] = {"tool": case.tool, "images": case.images, "image_px": case.image_px}
    if isinstance(case.spec, str):
        spec = case.spec
    else:
        directory = root / "model"
        report["model"] = case.spec(directory)
        spec = f"local:{directory}"
    report["spec"] = spec
    tasks = tasks_for(case, spec, scenes, shas)
    report.update(in_process(case, spec, tasks, root, concurrency))
    if case.through_celery:
        report["celery"] = through_celery(case, tasks, root, concurrency)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer images (about 5 minutes)")
    parser.add_argument("--only", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    names = [name for name in args.only.split(",") if name]
    chosen = [case for case in cases(args.quick) if not names or case.name in names]
    if not chosen:
        known = ", ".join(case.name for case in cases(args.quick))
        parser.error(f"no case named {args.only}: choose from {known}")
    results: dict[str, Any] = {
        "method": {
            "quick": args.quick,
            "concurrency": args.concurrency,
            "warmup_tasks": WARMUP_TASKS,
            "configurations": CONFIGURATIONS,
            "celery_configurations": CELERY_CONFIGURATIONS,
        },
        "cases": {},
    }
    for case in chosen:
        with tempfile.TemporaryDirectory(prefix="mmrag-bench-") as scratch:
            results["cases"][case.name] = run_case(case, Path(scratch), args.concurrency)
    emit("tool_throughput", results)


if __name__ == "__main__":
    main()
