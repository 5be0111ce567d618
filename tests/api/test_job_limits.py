"""The concurrent-jobs limit counts a tenant's unfinished jobs only (the driver is not
started here, so submitted jobs stay queued: unfinished)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mmrag.config import Settings, TenancySettings
from mmrag.errors import RateLimited
from mmrag.retrieval.items import IngestItem
from mmrag.services import Services
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import JobSpec


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_concurrent_jobs_per_tenant(settings: Settings) -> None:
    tenancy = TenancySettings(concurrent_jobs=2)
    services = Services.open(settings.model_copy(update={"tenancy": tenancy}))
    jobs = JobService.open(services)
    try:
        services.ingest_for("acme", [IngestItem.upload(png(), "a.png")])
        spec = JobSpec.model_validate({"source": {"kind": "indexed"}, "tasks": [{"task": "embed"}]})
        for _ in range(2):
            jobs.admit("acme")
            jobs.submit(spec, tenant="acme")
        with pytest.raises(RateLimited) as refused:
            jobs.admit("acme")
        assert refused.value.retry_after_s > 0
        # Submitting checks it too, whichever surface submits (Slack, the agent's confirm).
        with pytest.raises(RateLimited):
            jobs.submit(spec, tenant="acme")
        jobs.admit("globex")  # another tenant's count
        assert len(jobs.records("acme")) == 2
        assert jobs.records("globex") == []
    finally:
        jobs.close()
        services.close()
