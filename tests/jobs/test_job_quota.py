"""A bulk job ingests within its tenant's storage quota, as an API upload does."""

from __future__ import annotations

import time

from jobs.conftest import write_scenes
from jobs.helpers import spec

from mmrag.config import Settings
from mmrag.services import Services
from mmrag.workers.jobs.service import JobService


def test_a_job_past_its_tenants_quota_stores_nothing(model_settings: Settings) -> None:
    data = model_settings.model_dump()
    data["tenancy"].update(max_images=2)
    services = Services.open(Settings.model_validate(data))
    jobs = JobService.open(services)  # not started: the batch runs here
    try:
        root = model_settings.allowed_roots[0]
        write_scenes(root / "shots", 4)
        source = {"kind": "paths", "paths": [str(root / "shots")]}
        job = jobs.submit(spec(source, {"task": "caption"}), tenant="acme")
        now = time.time()
        items = jobs.store.claim(job.id, 4, now, "test:0", now + 30)
        outcome = jobs.driver.processor.run(jobs.store.get(job.id), items)
        assert len(outcome.items) == 4
        for item in outcome.items:
            assert "quota of 2" in item.reason, item
            assert item.image_id is None
        assert services.scoped("acme").store.count() == 0
    finally:
        jobs.close()
        services.close()
