"""A job and its items as the job store keeps them."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from mmrag.workers.jobs.spec import JobSpec

JobState = Literal["queued", "running", "cancelling", "cancelled", "completed"]
ItemState = Literal["pending", "running", "done", "failed", "skipped"]
ITEM_STATES: tuple[ItemState, ...] = get_args(ItemState)
# A job in these states still has work (or a cancel) to drive to its end.
UNFINISHED: frozenset[JobState] = frozenset({"queued", "running", "cancelling"})


def new_job_id() -> str:
    return secrets.token_hex(16)


class JobRecord(BaseModel):
    id: str = Field(default_factory=new_job_id)
    spec: JobSpec
    total: int
    created: float = Field(default_factory=time.time)
    state: JobState = "queued"
    started: float | None = None
    finished: float | None = None
    # Who started it, when a tenant did (retrieval/tenants.py): only that tenant sees it.
    tenant: str | None = None


class ItemRecord(BaseModel):
    """One image of a job. ``key`` says where it comes from (a path, a URL, an archive
    member, an image id); ``result`` is what the tasks returned, for the export."""

    seq: int
    key: str
    state: ItemState = "pending"
    attempts: int = 0
    outages: int = 0  # times the tool backend was down for it (no attempt spent)
    not_before: float = 0.0  # a retry waits until then (backoff)
    reason: str = ""
    image_id: str | None = None
    result: dict[str, Any] | None = None
