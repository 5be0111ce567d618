"""Fixtures for the job tests: the worker tests' Redis, worker and model settings, reused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from workers.conftest import (  # noqa: F401 (fixtures)
    celery_settings,
    celery_worker,
    model_settings,
    redis_server,
)
from workers.shapes_scenes import held_out, png_of

from mmrag.config import Settings
from mmrag.services import Services
from mmrag.workers.jobs.service import JobService


def write_scenes(directory: Path, count: int, start: int = 0) -> list[Path]:
    """``count`` distinct shapes scenes as PNG files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, scene in enumerate(held_out(start + count)[start:], start=start):
        path = directory / f"scene-{index:04d}.png"
        path.write_bytes(png_of(scene))
        written.append(path)
    return written


def services_of(jobs: JobService) -> Services:
    """The service layer the jobs run over (they see it only through JobServices)."""
    assert isinstance(jobs.services, Services)
    return jobs.services


@pytest.fixture
def jobs(model_settings: Settings) -> Iterator[JobService]:  # noqa: F811 (the fixture)
    """Jobs in the embedded mode with the tiny models, retrying and polling fast."""
    data = model_settings.model_dump()
    data["jobs"].update(retry_backoff_s=0.05, poll_s=0.05)
    services = Services.open(Settings.model_validate(data))
    service = JobService.open(services)
    service.start()
    try:
        yield service
    finally:
        service.close()
        services.close()
