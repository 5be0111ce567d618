"""The only worker stopped for longer than an item's attempts would last, then started
again: the job waits the outage out, and no item fails of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs.conftest import write_scenes
from jobs.helpers import wait_for
from workers.worker_settings import worker_environment

from mmrag.config import Settings
from mmrag.services import Services
from mmrag.testing.celery_worker import CeleryWorker
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import JobSpec

pytestmark = pytest.mark.slow

COUNT = 16


@pytest.fixture
def celery_worker(celery_settings: Settings, tmp_path: Path) -> Iterator[CeleryWorker]:
    """A worker that starts, and starts again, with its models loaded (`--preload`): loading
    on first use takes ~10 s on a slow 2-core machine, past this test's 4 s result wait, and
    a slow first task is not the outage this test is about."""
    environment = worker_environment(celery_settings)
    log_path = tmp_path / "worker.log"
    broker_url = celery_settings.workers.broker_url
    with CeleryWorker(environment, broker_url, log_path, preload=True) as worker:
        yield worker


@pytest.fixture
def jobs(celery_settings: Settings, celery_worker: CeleryWorker) -> Iterator[JobService]:
    data = celery_settings.model_dump()
    data["workers"].update(result_wait_s=4)
    # Two attempts 0.1 s apart: without the outage rule every item claimed while the worker
    # is away fails in well under a second.
    data["jobs"].update(
        retry_backoff_s=0.1, outage_backoff_s=0.2, outage_backoff_max_s=1.0, poll_s=0.05
    )
    services = Services.open(Settings.model_validate(data))
    service = JobService.open(services)
    service.start()
    try:
        yield service
    finally:
        service.close()
        services.close()


def test_a_worker_outage_spends_no_attempts_and_fails_no_item(
    jobs: JobService, celery_worker: CeleryWorker
) -> None:
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "shots", COUNT)
    spec = JobSpec.model_validate(
        {
            "source": {"kind": "paths", "paths": [str(root / "shots")]},
            "tasks": [{"task": "caption"}],
            "options": {"batch_size": 2, "max_attempts": 2},
        }
    )
    job_id = jobs.submit(spec).id
    deadline = time.monotonic() + 60
    while jobs.status(job_id).counts["done"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    celery_worker.stop()
    time.sleep(6.0)  # past 2 attempts of a lost task (result_wait_s 4) and many backoffs
    during = jobs.status(job_id).counts
    assert during["failed"] == 0, during
    assert during["done"] < COUNT, during  # the outage left work to do
    celery_worker.start()
    status = wait_for(jobs, job_id, {"completed"}, timeout_s=60)
    assert status.counts["failed"] == 0, status.counts
    assert status.counts["done"] == COUNT, status.counts
    items = list(jobs.items(job_id))
    assert any(item.outages > 0 for item in items)  # items did meet the outage
    assert all(item.attempts == 1 for item in items)
