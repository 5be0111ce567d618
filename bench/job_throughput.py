"""Bulk annotation jobs: throughput against one image per API request, export latency, and
the API process's memory as jobs grow.

Workload: ``N`` synthetic shapes scenes (held-out seeds, 64 px PNGs) in a folder under the
allowed roots. Models: the tiny shapes CLIP embedder, ``fixture:shapes-vlm`` for captions
(``--vlm SPEC`` for another, ``--vlm ''`` for none) and ``fixture:shapes-grounding`` for
detection (vocabulary: the world's 12 colour-shape phrases). Embedded mode, in this process.

- ``job``: one job (index + caption + detect) over the folder, from submit until the job
  is completed: images/s. A 4-image job runs first to load the models (not counted).
- ``per_request``: the same work, one image per request through the API in this run: a
  fresh data dir, ``POST /v1/images`` with the file, then ``POST /v1/detect`` (and
  ``/v1/caption``) with its id, one after the other (FastAPI's TestClient, the real app).
- ``export``: from the last item done to a complete COCO export (streamed to nowhere).
- ``memory``: peak resident memory of this process (the API's role: driver, store, models)
  while index-only jobs of ``M/4`` and ``M`` images run; it should not grow with the job.

    .venv/bin/python -m bench.job_throughput [--quick] [--images N] [--memory-images M]
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.common import emit
from mmrag.api.app import create_app
from mmrag.config import Settings
from mmrag.models.fixtures.shapes import COLOURS, HELD_OUT_SEEDS, KINDS, generate_scene
from mmrag.services import Services
from mmrag.workers.jobs.export import export
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import JobSpec

log = logging.getLogger("bench.job_throughput")
VOCABULARY = [f"{colour} {kind}" for colour in COLOURS for kind in KINDS]


def write_scenes(directory: Path, count: int, first: int = 0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        scene = generate_scene(HELD_OUT_SEEDS.start + 20_000 + first + index)
        scene.image.save(directory / f"scene-{index:05d}.png")


def settings_for(root: Path, data: Path, vlm: str | None) -> Settings:
    models: dict[str, Any] = {
        "embedder": "fixture:shapes-clip",
        "grounding": "fixture:shapes-grounding",
        "device": "cpu",
    }
    if vlm:
        models["vlm"] = vlm
    return Settings(data_dir=data, allowed_roots=[root], models=models, samples={"enabled": False})


def tasks(vlm: str | None) -> list[dict[str, Any]]:
    chosen: list[dict[str, Any]] = [{"task": "detect", "labels": VOCABULARY}]
    if vlm:
        chosen.insert(0, {"task": "caption"})
    return chosen


def run_job(jobs: JobService, folder: Path, job_tasks: list[dict[str, Any]]) -> dict[str, Any]:
    spec = JobSpec.model_validate(
        {"source": {"kind": "paths", "paths": [str(folder)]}, "tasks": job_tasks}
    )
    started = time.perf_counter()
    job = jobs.submit(spec)
    while (status := jobs.status(job.id)).state != "completed":
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    export_started = time.perf_counter()
    size = sum(len(chunk) for chunk in export("coco", spec, lambda: jobs.items(job.id)))
    return {
        "images": job.total,
        "done": status.counts["done"],
        "skipped": status.counts["skipped"],
        "failed": status.counts["failed"],
        "seconds": round(elapsed, 2),
        "images_per_s": round(job.total / elapsed, 2),
        "timings_s": {stage: round(value, 2) for stage, value in status.timings_s.items()},
        "export_coco_s": round(time.perf_counter() - export_started, 3),
        "export_bytes": size,
    }


def per_request(settings: Settings, folder: Path, vlm: str | None) -> dict[str, Any]:
    files = sorted(folder.glob("*.png"))
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter()
        for path in files:
            created = client.post(
                "/v1/images", files={"files": (path.name, path.read_bytes(), "image/png")}
            )
            created.raise_for_status()
            image_id = created.json()["items"][0]["id"]
            if vlm:
                client.post("/v1/caption", json={"image_id": image_id}).raise_for_status()
            client.post(
                "/v1/detect", json={"image_id": image_id, "labels": VOCABULARY}
            ).raise_for_status()
        elapsed = time.perf_counter() - started
    return {
        "images": len(files),
        "seconds": round(elapsed, 2),
        "images_per_s": round(len(files) / elapsed, 2),
    }


class PeakRss:
    """Samples this process's resident memory (``/proc/self/statm``) in a thread."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        page = resource.getpagesize()
        while not self._stop.is_set():
            with open("/proc/self/statm") as statm:
                rss = int(statm.read().split()[1]) * page / 2**20
            self.peak_mb = max(self.peak_mb, rss)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def memory(root: Path, data: Path, count: int) -> dict[str, Any]:
    settings = settings_for(root, data, None)
    services = Services.open(settings)
    jobs = JobService.open(services)
    jobs.start()
    results: dict[str, Any] = {}
    try:
        for first, size in ((0, count // 4), (count, count)):
            folder = root / f"memory-{size}"
            write_scenes(folder, size, first=100_000 + first)
            with PeakRss() as rss:
                outcome = run_job(jobs, folder, [{"task": "embed"}])
            results[f"{size}_images"] = {
                "peak_rss_mb": round(rss.peak_mb, 1),
                "images_per_s": outcome["images_per_s"],
            }
    finally:
        jobs.close()
        services.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--memory-images", type=int, default=10_000)
    parser.add_argument(
        "--vlm", default="fixture:shapes-vlm", help="the captioning VLM's spec ('' for none)"
    )
    parser.add_argument("--quick", action="store_true", help="100 images, 2,000 for memory")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.images, arguments.memory_images = 100, 2_000
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        root = Path(tmp) / "images"
        folder = root / "scenes"
        write_scenes(folder, arguments.images)
        settings = settings_for(root, Path(tmp) / "data-job", arguments.vlm)
        services = Services.open(settings)
        jobs = JobService.open(services)
        jobs.start()
        try:
            # Models load on first use: a small job first, not counted (the API requests
            # below run after it, on models this process has already loaded).
            write_scenes(root / "warm-up", 4, first=-10)  # other scenes: none is skipped
            run_job(jobs, root / "warm-up", tasks(arguments.vlm))
            job = run_job(jobs, folder, tasks(arguments.vlm))
        finally:
            jobs.close()
            services.close()
        baseline = per_request(
            settings_for(root, Path(tmp) / "data-requests", arguments.vlm), folder, arguments.vlm
        )
        memory_results = memory(root, Path(tmp) / "data-memory", arguments.memory_images)
    emit(
        "job_throughput",
        {
            "workload": {
                "images": arguments.images,
                "tasks": [task["task"] for task in tasks(arguments.vlm)],
                "vocabulary": len(VOCABULARY),
                "models": {"grounding": "fixture:shapes-grounding", "vlm": arguments.vlm},
            },
            "job": job,
            "per_request": baseline,
            "speedup": round(job["images_per_s"] / baseline["images_per_s"], 2),
            "memory": memory_results,
        },
    )


if __name__ == "__main__":
    main()
