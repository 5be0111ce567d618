"""The concurrent-jobs limit counts a tenant's unfinished jobs only (the driver is not
started here, so submitted jobs stay queued: unfinished)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mmrag.api.limits import Limits
from mmrag.api.security import Caller
from mmrag.config import Settings, TenancySettings
from mmrag.errors import RateLimited
from mmrag.retrieval.items import IngestItem
from mmrag.services import Services
from mmrag.tenancy.keys import KeyStore
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import JobSpec


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_concurrent_jobs_per_tenant(settings: Settings) -> None:
    services = Services.open(settings)
    jobs = JobService.open(services)
    keys = KeyStore.in_data_dir(settings.data_dir)
    limits = Limits(TenancySettings(concurrent_jobs=2), keys)
    acme = Caller("ci", "acme", frozenset({"jobs"}), "k1")
    globex = Caller("ci", "globex", frozenset({"jobs"}), "k2")
    try:
        services.ingest_for("acme", [IngestItem.upload(png(), "a.png")])
        spec = JobSpec.model_validate({"source": {"kind": "indexed"}, "tasks": [{"task": "embed"}]})
        for _ in range(2):
            limits.admit_job(acme, jobs)
            jobs.submit(spec, tenant="acme")
        with pytest.raises(RateLimited) as refused:
            limits.admit_job(acme, jobs)
        assert refused.value.retry_after_s > 0
        limits.admit_job(globex, jobs)  # another tenant's count
        assert len(jobs.records("acme")) == 2
        assert jobs.records("globex") == []
    finally:
        keys.close()
        jobs.close()
        services.close()
