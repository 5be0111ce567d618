"""The ``regions`` job task: region vectors for a whole collection, resumable like the others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jobs.conftest import services_of, write_scenes
from jobs.helpers import spec, wait_for

from mmrag.config import Settings
from mmrag.retrieval.items import IngestItem
from mmrag.services import Services
from mmrag.workers.jobs.service import JobService


def open_jobs(settings: Settings, **regions: object) -> tuple[Services, JobService]:
    data = settings.model_dump()
    data["jobs"].update(retry_backoff_s=0.05, poll_s=0.05)
    data["regions"].update(regions)
    services = Services.open(Settings.model_validate(data))
    service = JobService.open(services)
    service.start()
    return services, service


@pytest.fixture
def any_score_jobs(model_settings: Settings) -> Iterator[JobService]:
    # The tiny detector's scores are noise: every box it finds is cropped.
    services, service = open_jobs(model_settings, min_score=0.0)
    yield service
    service.close()
    services.close()


def test_detect_then_regions_stores_a_region_per_box(any_score_jobs: JobService) -> None:
    jobs = any_score_jobs
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "shots", 5)
    job = jobs.submit(
        spec(
            {"kind": "paths", "paths": [str(root / "shots")]},
            {"task": "detect", "labels": ["red circle", "blue square"]},
            {"task": "regions"},
        )
    )
    status = wait_for(jobs, job.id, {"completed"}, timeout_s=120)
    assert status.counts["done"] == 5, status.counts
    services = services_of(jobs)
    with_boxes = 0
    for item in jobs.items(job.id):
        assert item.result is not None
        payload = services.image(str(item.image_id))
        boxes = payload.get("boxes", [])
        stored = payload["regions"]
        assert item.result["regions"]["regions"] == len(stored) == min(len(boxes), 32)
        for region in stored:
            x1, y1, x2, y2 = region["box"]
            assert 0 <= x1 < x2 <= payload["width"]
            assert 0 <= y1 < y2 <= payload["height"]
        with_boxes += bool(boxes)
    assert with_boxes > 0  # the detector found something to crop
    assert services.store.count_regions() == with_boxes


def test_a_regions_job_gives_grid_crops_and_skips_what_is_done(model_settings: Settings) -> None:
    # Images indexed before grid crops were turned on have no regions...
    root = model_settings.allowed_roots[0]
    paths = write_scenes(root / "shots", 4)
    before = Services.open(model_settings)
    try:
        before.ingest([IngestItem.upload(path.read_bytes(), path.name) for path in paths])
    finally:
        before.close()
    services, jobs = open_jobs(model_settings, grid=2)
    try:
        assert services.store.count_regions() == 0
        # ...until a regions job gives them their grid.
        first = jobs.submit(spec({"kind": "indexed"}, {"task": "regions"}))
        status = wait_for(jobs, first.id, {"completed"})
        assert status.counts["done"] == 4, status.counts
        assert services.store.count_regions() == 4
        for item in jobs.items(first.id):
            assert item.result is not None
            assert item.result["regions"] == {
                "regions": 4,
                "skipped_boxes": 0,
                "capped_boxes": 0,
                "grid": True,
            }
            regions = services.image(str(item.image_id))["regions"]
            assert [region["label"] for region in regions] == ["grid"] * 4

        again = jobs.submit(spec({"kind": "indexed"}, {"task": "regions"}))
        status = wait_for(jobs, again.id, {"completed"})
        assert status.counts["skipped"] == 4, status.counts
    finally:
        jobs.close()
        services.close()
