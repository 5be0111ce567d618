"""Redis restarted half-way through a job (distributed mode, Redis with its append-only
file as docker-compose runs it): every image done exactly once in the job and the index."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs.conftest import services_of, write_scenes
from jobs.helpers import folder_spec, wait_for
from workers.worker_settings import worker_environment

from mmrag.config import Settings
from mmrag.services import Services
from mmrag.testing.celery_worker import CeleryWorker
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import JobSpec

pytestmark = pytest.mark.slow

COUNT = 200  # a few hundred images, as a bulk job is


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
    write_scenes(root / "shots", COUNT)
    spec = JobSpec.model_validate(
        {**folder_spec(root), "options": {"batch_size": 4, "max_attempts": 10}}
    )
    job_id = jobs.submit(spec).id
    deadline = time.monotonic() + 240
    while (before := jobs.status(job_id).counts)["done"] < COUNT // 2:
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
        status = wait_for(jobs, job_id, {"completed"}, timeout_s=240)
    assert status.counts["done"] == COUNT, status.counts
    items = list(jobs.items(job_id))
    ids = {item.image_id for item in items}
    assert len(ids) == COUNT
    assert jobs.services.store.count() == COUNT
    for item in items:
        assert item.result is not None
        assert (
            services_of(jobs).image(str(item.image_id))["model_caption"] == item.result["caption"]
        )
