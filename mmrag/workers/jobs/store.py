"""Where jobs and their per-item state live: :class:`JobStore` and how to open one.

SQLite in the data dir in the embedded mode, Redis in the distributed mode: the same two
backends as the service's other state, picked by ``MMRAG_WORKERS__MODE``.
Item state is written per batch, so a restart loses at most the batches in flight. A claim
holds its items under a lease that its driver renews while it works on them; a lease that
runs out (the driver died, or lost the store) puts the items back to pending at the next
claim, by whichever driver, and a late save of the old claim changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from mmrag.config import Settings
from mmrag.workers.jobs.records import ItemRecord, ItemState, JobRecord, JobState


class JobStore(Protocol):
    def create(self, job: JobRecord, keys: Sequence[str]) -> None:
        """Store the job and one pending item per key, in order."""
        ...

    def get(self, job_id: str) -> JobRecord:
        """The job, or :class:`NotFound`."""
        ...

    def page(self, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and how many there are."""
        ...

    def set_state(
        self,
        job_id: str,
        state: JobState,
        expected: frozenset[JobState],
        now: float,
    ) -> bool:
        """Move the job to ``state`` if it is in one of ``expected`` (atomically: a cancel
        and the driver never overwrite each other); whether it moved. ``now`` stamps
        ``started`` (first move to running) or ``finished`` (completed, cancelled)."""
        ...

    def claim(
        self, job_id: str, limit: int, now: float, owner: str, lease_until: float
    ) -> list[ItemRecord]:
        """Up to ``limit`` pending items due by ``now``, marked running under ``owner`` (a
        token per claim) until ``lease_until``, in order. Items whose lease ran out by
        ``now`` are pending again first. An item is claimed once, whoever else claims at
        the same time."""
        ...

    def renew(self, job_id: str, owner: str, seqs: Sequence[int], lease_until: float) -> None:
        """Extend the leases ``owner`` still holds on ``seqs``."""
        ...

    def save_items(self, job_id: str, items: Sequence[ItemRecord], owner: str) -> None:
        """Write back items claimed by ``owner`` in their new state (done, failed, skipped,
        or pending again for a retry); items ``owner`` no longer holds are left alone."""
        ...

    def claim_images(self, job_id: str, pairs: Sequence[tuple[str, int]]) -> list[tuple[int, bool]]:
        """For each ``(image_id, seq)`` in order, the seq of the job's item that owns the
        image (``seq`` itself when it is the first of the job to bring it: same bytes twice
        in a source are one image, annotated and exported once), and whether this call
        made it the owner (``False`` for an item that ran before: a crash, then again)."""
        ...

    def counts(self, job_id: str) -> dict[ItemState, int]: ...

    def items(self, job_id: str, offset: int, limit: int) -> list[ItemRecord]:
        """Items in order, any state (for exports and reports)."""
        ...

    def add_timings(self, job_id: str, seconds: Mapping[str, float]) -> None:
        """Add time spent per stage (ingest, caption, detect ...)."""
        ...

    def timings(self, job_id: str) -> dict[str, float]: ...

    def unfinished(self) -> list[str]:
        """Ids of jobs not yet completed or cancelled, highest priority first."""
        ...

    def close(self) -> None: ...


def open_job_store(settings: Settings) -> JobStore:
    if settings.workers.mode == "celery":
        from mmrag.workers.jobs.store_redis import RedisJobStore

        return RedisJobStore.from_url(settings.workers.broker_url)
    from mmrag.workers.jobs.store_sqlite import SqliteJobStore

    return SqliteJobStore(settings.data_dir / "jobs.sqlite3")
