"""Faults half-way through a job, each ending with every image done exactly once in the
export and in the index: the API process SIGKILLed and started again (embedded mode), and
Redis restarted (distributed mode, Redis with its append-only file as in docker-compose)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs.api_process import ApiProcess
from jobs.conftest import write_scenes
from jobs.helpers import wait_for
from workers.worker_settings import worker_environment

from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir
from mmrag.services import Services
from mmrag.testing.celery_worker import CeleryWorker
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import JobSpec

pytestmark = pytest.mark.slow

COUNT = 60


def spec_for(root: Path) -> dict[str, Any]:
    return {
        "source": {"kind": "paths", "paths": [str(root / "shots")]},
        "tasks": [{"task": "caption"}, {"task": "detect", "labels": ["red circle"]}],
        "options": {"batch_size": 4},
    }


def api_env(settings: Settings) -> dict[str, str]:
    models = settings.models
    return {
        "MMRAG_DATA_DIR": str(settings.data_dir),
        "MMRAG_ALLOWED_ROOTS": json.dumps([str(root) for root in settings.allowed_roots]),
        "MMRAG_MODELS__EMBEDDER": models.embedder,
        "MMRAG_MODELS__VLM": models.vlm,
        "MMRAG_MODELS__GROUNDING": models.grounding,
        "MMRAG_MODELS__DEVICE": "cpu",
        "MMRAG_MODELS__CPU_THREADS": "1",
        "MMRAG_MODELS__CACHE_DIR": str(models.cache_dir or default_cache_dir()),
        "MMRAG_SAMPLES__ENABLED": "false",
        "MMRAG_JOBS__POLL_S": "0.05",
        "MMRAG_JOBS__RETRY_BACKOFF_S": "0.1",
    }


def counts(client: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return dict(body["counts"], state=body["state"])


@pytest.fixture
def api(model_settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    process = ApiProcess(api_env(model_settings), tmp_path / "api.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_the_api_sigkilled_half_way_resumes_on_start(
    api: ApiProcess, model_settings: Settings
) -> None:
    root = model_settings.allowed_roots[0]
    write_scenes(root / "shots", COUNT)
    with httpx.Client(base_url=api.url, timeout=30) as client:
        job_id = client.post("/v1/jobs", json=spec_for(root)).json()["id"]
        deadline = time.monotonic() + 90
        while (before := counts(client, job_id))["done"] < 12:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    api.kill()
    assert before["pending"] > 0  # killed with work left
    api.start()  # same data dir: the driver resumes the job
    with httpx.Client(base_url=api.url, timeout=30) as client:
        deadline = time.monotonic() + 120
        while (now := counts(client, job_id))["state"] != "completed":
            assert time.monotonic() < deadline, now
            time.sleep(0.1)
        assert now["done"] == COUNT, now
        lines = client.get(f"/v1/jobs/{job_id}/export", params={"format": "jsonl"}).text
        records = [json.loads(line) for line in lines.splitlines()]
        assert len(records) == COUNT
        assert len({record["id"] for record in records}) == COUNT
        assert client.get("/v1/images", params={"limit": 1}).json()["total"] == COUNT
        for record in records:  # what the export says is what the index holds
            image = client.get(f"/v1/images/{record['id']}").json()
            assert image["caption"] == record["caption"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """Overrides the workers' fixture: Redis with persistence, as deployed."""
    with RedisServer(tmp_path / "redis", persistent=True) as server:
        yield server


@pytest.fixture
def celery_jobs(celery_settings: Settings, celery_worker: CeleryWorker) -> Iterator[JobService]:
    data = celery_settings.model_dump()
    data["workers"].update(result_wait_s=8)
    data["jobs"].update(retry_backoff_s=0.5, retry_backoff_max_s=2.0, poll_s=0.05)
    services = Services.open(Settings.model_validate(data))
    service = JobService.open(services)
    service.start()
    try:
        yield service
    finally:
        service.close()
        services.close()


def test_redis_restarted_half_way_loses_nothing_and_repeats_nothing(
    celery_jobs: JobService, redis_server: RedisServer, celery_settings: Settings, tmp_path: Path
) -> None:
    jobs = celery_jobs
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "shots", COUNT // 2)
    spec = JobSpec.model_validate(
        {**spec_for(root), "options": {"batch_size": 4, "max_attempts": 10}}
    )
    job_id = jobs.submit(spec).id
    deadline = time.monotonic() + 60
    while (before := jobs.status(job_id).counts)["done"] < 8:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    redis_server.stop()
    time.sleep(1.0)
    redis_server.start()
    assert before["pending"] > 0
    # Celery 5.7's worker sometimes dies of the lost broker connection ("Unrecoverable
    # error: AttributeError ... 'hostname'" in kombu's close): a supervisor would start
    # another, as this does. The job must not care which worker finishes it.
    replacement = CeleryWorker(
        worker_environment(celery_settings),
        celery_settings.workers.broker_url,
        tmp_path / "worker-2.log",
        hostname="test-worker-2",
    )
    with replacement:
        status = wait_for(jobs, job_id, {"completed"}, timeout_s=120)
    assert status.counts["done"] == COUNT // 2, status.counts
    items = list(jobs.items(job_id))
    ids = {item.image_id for item in items}
    assert len(ids) == COUNT // 2
    assert jobs.services.store.count() == COUNT // 2
    for item in items:
        assert item.result is not None
        assert jobs.services.image(str(item.image_id))["model_caption"] == item.result["caption"]
