"""Specs and waiting for jobs in tests."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmrag.workers.jobs.service import JobService, JobStatus
from mmrag.workers.jobs.spec import JobSpec


def wait_for(jobs: JobService, job_id: str, states: set[str], timeout_s: float = 120) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        status = jobs.status(job_id)
        if status.state in states:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {status.state}: {status.counts}")
        time.sleep(0.1)


def spec(source: Mapping[str, object], *tasks: Mapping[str, object], batch: int = 4) -> JobSpec:
    return JobSpec.model_validate(
        {"source": source, "tasks": list(tasks), "options": {"batch_size": batch}}
    )


def folder_spec(root: Path) -> dict[str, Any]:
    """Caption and detect over ``root/shots``, in batches of 4: the fault tests' job."""
    return {
        "source": {"kind": "paths", "paths": [str(root / "shots")]},
        "tasks": [{"task": "caption"}, {"task": "detect", "labels": ["red circle"]}],
        "options": {"batch_size": 4},
    }
