"""Items a dead driver left running come back by their leases, even when the job store
was away as the next driver started (Redis loading its append-only file, compose starting
the API before Redis)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from jobs.conftest import write_scenes
from jobs.helpers import spec, wait_for

from mmrag.config import Settings
from mmrag.services import Services
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.store_redis import RedisJobStore


def test_a_store_away_when_the_driver_starts_still_completes_the_job(
    settings: Settings, tmp_path: Path
) -> None:
    data = settings.model_dump()
    data["jobs"].update(lease_s=1.0, poll_s=0.05)
    services = Services.open(Settings.model_validate(data))
    root = settings.allowed_roots[0]
    write_scenes(root / "shots", 6)
    with RedisServer(tmp_path / "redis", persistent=True) as server:
        store = RedisJobStore.from_url(server.url)
        jobs = JobService(services, store)
        try:
            job = jobs.submit(
                spec({"kind": "paths", "paths": [str(root / "shots")]}, {"task": "embed"})
            )
            # The driver before this one died holding two items.
            now = time.time()
            assert len(store.claim(job.id, 2, now, "dead-driver:0", now + 1.0)) == 2
            server.stop()
            jobs.start()
            time.sleep(1.5)
            server.start()
            status = wait_for(jobs, job.id, {"completed"}, timeout_s=30)
            assert status.counts["done"] == 6, status.counts
            assert services.store.count() == 6
        finally:
            jobs.close()
            services.close()


def test_a_job_whose_record_does_not_read_back_does_not_starve_the_others(
    settings: Settings,
) -> None:
    data = settings.model_dump()
    data["jobs"].update(poll_s=0.05)
    services = Services.open(Settings.model_validate(data))
    jobs = JobService.open(services)
    try:
        root = settings.allowed_roots[0]
        write_scenes(root / "first", 2)
        write_scenes(root / "second", 2, start=2)
        first = spec({"kind": "paths", "paths": [str(root / "first")]}, {"task": "embed"})
        urgent = first.options.model_copy(update={"priority": 9})
        broken = jobs.submit(first.model_copy(update={"options": urgent}))
        other = jobs.submit(
            spec({"kind": "paths", "paths": [str(root / "second")]}, {"task": "embed"})
        )
        # The first job's record no longer validates (written by another version, say).
        db = sqlite3.connect(settings.data_dir / "jobs.sqlite3")
        with db:
            db.execute("UPDATE jobs SET record = '{}' WHERE id = ?", (broken.id,))
        db.close()
        jobs.start()
        assert wait_for(jobs, other.id, {"completed"}, timeout_s=20).counts["done"] == 2
    finally:
        jobs.close()
        services.close()
