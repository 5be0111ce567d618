"""Jobs in the distributed mode: job state in a real Redis, model work on real ``mmrag
worker`` processes (tiny random models: structure, not answers), including a worker
SIGKILLed half-way through a job."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs.conftest import services_of, write_scenes
from jobs.helpers import wait_for
from workers.worker_settings import worker_environment

from mmrag.config import Settings
from mmrag.services import Services
from mmrag.testing.celery_worker import CeleryWorker
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.jobs.export import export_jsonl
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import JobSpec
from mmrag.workers.jobs.store_redis import RedisJobStore

pytestmark = pytest.mark.slow


@pytest.fixture
def job_settings(celery_settings: Settings) -> Settings:
    data = celery_settings.model_dump()
    # A task whose worker died is given up after 8 s and its items retried (the broker
    # would only redeliver it after the visibility timeout).
    data["workers"].update(result_wait_s=8)
    data["jobs"].update(retry_backoff_s=0.5, poll_s=0.05, concurrency=2)
    return Settings.model_validate(data)


@pytest.fixture
def jobs(job_settings: Settings, celery_worker: CeleryWorker) -> Iterator[JobService]:
    services = Services.open(job_settings)
    service = JobService.open(services)
    service.start()
    try:
        yield service
    finally:
        service.close()
        services.close()


def folder_job(jobs: JobService, count: int, batch: int) -> str:
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "shots", count)
    spec = JobSpec.model_validate(
        {
            "source": {"kind": "paths", "paths": [str(root / "shots")]},
            "tasks": [{"task": "caption"}, {"task": "detect", "labels": ["red circle"]}],
            "options": {"batch_size": batch, "max_attempts": 8},
        }
    )
    return jobs.submit(spec).id


def assert_each_image_once(jobs: JobService, job_id: str, count: int) -> None:
    records = list(export_jsonl(lambda: jobs.items(job_id)))
    ids = [line.split('"id": "')[1][:32] for line in records]
    assert len(ids) == count
    assert len(set(ids)) == count
    assert jobs.services.store.count() == count
    for image_id in ids:
        payload = services_of(jobs).image(image_id)
        assert "model_caption" in payload
        assert "red_circle" in payload["counts"]


def test_a_job_runs_on_the_workers_with_its_state_in_redis(
    jobs: JobService, redis_server: RedisServer
) -> None:
    assert isinstance(jobs.store, RedisJobStore)
    job_id = folder_job(jobs, 8, batch=4)
    status = wait_for(jobs, job_id, {"completed"})
    assert status.counts["done"] == 8
    assert redis_server.client().exists(f"mmrag:job:{job_id}:items")
    assert_each_image_once(jobs, job_id, 8)


def test_a_worker_sigkilled_half_way_loses_nothing_and_repeats_nothing(
    jobs: JobService, celery_worker: CeleryWorker, job_settings: Settings, tmp_path: Path
) -> None:
    count = 200  # a few hundred images, as a bulk job is
    job_id = folder_job(jobs, count, batch=8)
    deadline = time.monotonic() + 120
    while jobs.status(job_id).counts["done"] < count // 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    celery_worker.kill()
    at_kill = jobs.status(job_id).counts
    assert at_kill["done"] < count, at_kill  # killed half-way, with work left
    assert at_kill["running"] > 0, at_kill  # and with batches in flight
    replacement = CeleryWorker(
        worker_environment(job_settings),
        job_settings.workers.broker_url,
        tmp_path / "worker-2.log",
        hostname="test-worker-2",
    )
    with replacement:
        status = wait_for(jobs, job_id, {"completed"}, timeout_s=150)
    assert status.counts["done"] == count, status.counts
    assert_each_image_once(jobs, job_id, count)
