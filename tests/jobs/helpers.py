"""Waiting for jobs in tests."""

from __future__ import annotations

import time

from mmrag.workers.jobs.service import JobService, JobStatus


def wait_for(jobs: JobService, job_id: str, states: set[str], timeout_s: float = 120) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        status = jobs.status(job_id)
        if status.state in states:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {status.state}: {status.counts}")
        time.sleep(0.1)
