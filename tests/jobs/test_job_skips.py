"""What a job counts as skipped: only work someone else did, of the kind it asks for."""

from __future__ import annotations

import time

import pytest
from jobs.conftest import services_of, write_scenes
from jobs.helpers import spec, wait_for

from mmrag.config import Settings
from mmrag.services import Services
from mmrag.workers.jobs.service import JobService

pytestmark = pytest.mark.slow


def test_a_detailed_caption_is_never_taken_from_a_short_one(jobs: JobService) -> None:
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "shots", 4)
    source = {"kind": "paths", "paths": [str(root / "shots")]}
    short = jobs.submit(spec(source, {"task": "caption"}))
    assert wait_for(jobs, short.id, {"completed"}).counts["done"] == 4
    detailed = jobs.submit(spec(source, {"task": "caption", "detail": "detailed"}))
    counts = wait_for(jobs, detailed.id, {"completed"}).counts
    assert (counts["done"], counts["skipped"]) == (4, 0), counts
    for item in jobs.items(detailed.id):
        assert services_of(jobs).image(str(item.image_id))["caption_detail"] == "detailed"
    again = jobs.submit(spec(source, {"task": "caption", "detail": "detailed"}))
    assert wait_for(jobs, again.id, {"completed"}).counts["skipped"] == 4


def test_a_jobs_own_work_found_after_its_driver_died_counts_as_done(
    model_settings: Settings,
) -> None:
    data = model_settings.model_dump()
    data["jobs"].update(lease_s=0.5, poll_s=0.05)
    services = Services.open(Settings.model_validate(data))
    jobs = JobService.open(services)
    try:
        root = model_settings.allowed_roots[0]
        write_scenes(root / "shots", 4)
        job = jobs.submit(
            spec({"kind": "paths", "paths": [str(root / "shots")]}, {"task": "caption"})
        )
        # A driver ran the whole batch (captions written back) and died before saving it.
        now = time.time()
        items = jobs.store.claim(job.id, 4, now, "dead-driver:0", now + 0.5)
        jobs.driver.processor.run(jobs.store.get(job.id), items)
        jobs.start()
        counts = wait_for(jobs, job.id, {"completed"}, timeout_s=30).counts
        assert (counts["done"], counts["skipped"]) == (4, 0), counts
    finally:
        jobs.close()
        services.close()
