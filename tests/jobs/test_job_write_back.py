"""What a job reports done is in the index: a write-back that failed retries the item."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from jobs.conftest import services_of, write_scenes
from jobs.helpers import spec, wait_for

from mmrag.errors import Unavailable
from mmrag.retrieval.tenants import DEFAULT_TENANT
from mmrag.workers.jobs.service import JobService

pytestmark = pytest.mark.slow


def test_a_caption_the_index_did_not_take_is_retried_not_done(
    jobs: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "shots", 6)
    # A job writes through its tenant's services (the default tenant's here).
    annotations = services_of(jobs).scoped(DEFAULT_TENANT).tools._annotations
    real = annotations.apply_caption
    refused: list[str] = []
    lock = threading.Lock()

    def blip(image_id: str, *args: Any) -> None:
        """The index away for the first three captions (a Qdrant restart), then back."""
        with lock:
            if len(refused) < 3:
                refused.append(image_id)
                raise Unavailable("the vector store is unreachable")
        real(image_id, *args)

    monkeypatch.setattr(annotations, "apply_caption", blip)
    job = jobs.submit(spec({"kind": "paths", "paths": [str(root / "shots")]}, {"task": "caption"}))
    status = wait_for(jobs, job.id, {"completed"}, timeout_s=60)
    assert status.counts["done"] == 6, status.counts
    assert len(refused) == 3
    for item in jobs.items(job.id):
        assert item.result is not None
        payload = services_of(jobs).image(str(item.image_id))
        assert payload["model_caption"] == item.result["caption"]  # in the index, as exported
        assert item.attempts == (2 if item.image_id in refused else 1)
