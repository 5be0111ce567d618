"""The API process SIGKILLed half-way through a job and started again, in both modes: every
image done exactly once in the export and in the index at the end."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs.api_process import ApiProcess
from jobs.conftest import write_scenes
from jobs.helpers import folder_spec

from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir

pytestmark = pytest.mark.slow

COUNT = 200  # a few hundred images, as a bulk job is


def api_env(settings: Settings) -> dict[str, str]:
    models = settings.models
    return {
        "MMRAG_DATA_DIR": str(settings.data_dir),
        "MMRAG_ALLOWED_ROOTS": json.dumps([str(root) for root in settings.allowed_roots]),
        "MMRAG_MODELS__EMBEDDER": models.embedder,
        "MMRAG_MODELS__VLM": models.vlm,
        "MMRAG_MODELS__GROUNDING": models.grounding,
        "MMRAG_MODELS__DEVICE": "cpu",
        "MMRAG_MODELS__CPU_THREADS": "1",
        "MMRAG_MODELS__CACHE_DIR": str(models.cache_dir or default_cache_dir()),
        "MMRAG_SAMPLES__ENABLED": "false",
        "MMRAG_JOBS__POLL_S": "0.05",
        "MMRAG_JOBS__RETRY_BACKOFF_S": "0.1",
        "MMRAG_JOBS__LEASE_S": "2",  # the killed API's items come back after this
    }


def counts(client: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return dict(body["counts"], state=body["state"])


@pytest.fixture(params=["embedded", "celery"])
def api(
    request: pytest.FixtureRequest, model_settings: Settings, tmp_path: Path
) -> Iterator[ApiProcess]:
    """``mmrag serve`` in either mode (celery: job state in Redis, a real worker)."""
    env = api_env(model_settings)
    if request.param == "celery":
        request.getfixturevalue("celery_worker")
        celery: Settings = request.getfixturevalue("celery_settings")
        env.update(
            MMRAG_WORKERS__MODE="celery",
            MMRAG_WORKERS__BROKER_URL=celery.workers.broker_url,
            MMRAG_WORKERS__RESULT_WAIT_S="8",
            MMRAG_WORKERS__TASK_TIME_LIMIT_S=str(celery.workers.task_time_limit_s),
            MMRAG_WORKERS__VISIBILITY_TIMEOUT_S=str(celery.workers.visibility_timeout_s),
            MMRAG_WORKERS__HEARTBEAT_S=str(celery.workers.heartbeat_s),
            MMRAG_WORKERS__RETRY_BACKOFF_MAX_S=str(celery.workers.retry_backoff_max_s),
        )
    process = ApiProcess(env, tmp_path / "api.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_the_api_sigkilled_half_way_resumes_on_start(
    api: ApiProcess, model_settings: Settings
) -> None:
    root = model_settings.allowed_roots[0]
    write_scenes(root / "shots", COUNT)
    with httpx.Client(base_url=api.url, timeout=30) as client:
        job_id = client.post("/v1/jobs", json=folder_spec(root)).json()["id"]
        deadline = time.monotonic() + 240
        while (before := counts(client, job_id))["done"] < COUNT // 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    api.kill()
    assert before["pending"] > 0  # killed with work left
    api.start()  # same data dir: the driver resumes the job
    with httpx.Client(base_url=api.url, timeout=30) as client:
        deadline = time.monotonic() + 240
        while (now := counts(client, job_id))["state"] != "completed":
            assert time.monotonic() < deadline, now
            time.sleep(0.1)
        assert now["done"] == COUNT, now
        lines = client.get(f"/v1/jobs/{job_id}/export", params={"format": "jsonl"}).text
        records = [json.loads(line) for line in lines.splitlines()]
        assert len(records) == COUNT
        assert len({record["id"] for record in records}) == COUNT
        assert client.get("/v1/images", params={"limit": 1}).json()["total"] == COUNT
        for record in records:  # what the export says is what the index holds
            image = client.get(f"/v1/images/{record['id']}").json()
            assert image["caption"] == record["caption"]
