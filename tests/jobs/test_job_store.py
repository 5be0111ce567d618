"""The JobStore contract, run against both backends: SQLite (embedded) and a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.errors import NotFound
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.jobs.records import UNFINISHED, JobRecord
from mmrag.workers.jobs.spec import JobSpec
from mmrag.workers.jobs.store import JobStore
from mmrag.workers.jobs.store_redis import RedisJobStore
from mmrag.workers.jobs.store_sqlite import SqliteJobStore

SPEC = JobSpec.model_validate(
    {
        "source": {"kind": "urls", "urls": ["http://example.org/a.png"]},
        "tasks": [{"task": "caption"}],
    }
)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        opened: JobStore = SqliteJobStore(tmp_path / "jobs.sqlite3")
        yield opened
        opened.close()
        return
    with RedisServer(tmp_path / "redis") as server:
        opened = RedisJobStore.from_url(server.url)
        yield opened
        opened.close()


def claim(store: JobStore, job_id: str, limit: int, now: float, owner: str = "A") -> list[int]:
    """Seqs claimed by ``owner`` under a lease of 100 s."""
    return [item.seq for item in store.claim(job_id, limit, now, owner, now + 100)]


def new_job(store: JobStore, keys: list[str], priority: int = 5) -> JobRecord:
    spec = SPEC.model_copy(
        update={"options": SPEC.options.model_copy(update={"priority": priority})}
    )
    job = JobRecord(spec=spec, total=len(keys))
    store.create(job, keys)
    return job


def test_a_job_reads_back_with_every_item_pending(store: JobStore) -> None:
    job = new_job(store, [f"k{i}" for i in range(2500)])
    found = store.get(job.id)
    assert found.spec == SPEC
    assert found.total == 2500
    assert found.state == "queued"
    counts = store.counts(job.id)
    assert counts["pending"] == 2500
    assert sum(counts.values()) == 2500
    page = store.items(job.id, 1000, 3)
    assert [item.key for item in page] == ["k1000", "k1001", "k1002"]
    with pytest.raises(NotFound):
        store.get("0" * 32)


def test_claims_are_in_order_and_never_given_twice(store: JobStore) -> None:
    job = new_job(store, [f"k{i}" for i in range(200)])
    # In numeric order, not by the digits' text (2 before 10, 11 before 100).
    assert claim(store, job.id, 12, now=1.0) == list(range(12))
    claimed: list[int] = list(range(12))
    lock = threading.Lock()

    def claim_all() -> None:
        while batch := claim(store, job.id, 7, now=1.0):
            with lock:
                claimed.extend(batch)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(200))  # each once
    assert store.counts(job.id)["running"] == 200


def test_saved_items_move_counts_and_retries_wait_for_their_time(store: JobStore) -> None:
    job = new_job(store, ["a", "b", "c"])
    a, b, c = store.claim(job.id, 10, 100.0, "A", 1e9)
    done = a.model_copy(update={"state": "done", "result": {"caption": "x"}, "image_id": "i" * 32})
    failed = b.model_copy(update={"state": "failed", "reason": "not an image", "attempts": 1})
    retry = c.model_copy(update={"state": "pending", "attempts": 1, "not_before": 200.0})
    store.save_items(job.id, [done, failed, retry], "A")
    assert store.counts(job.id) == {
        "pending": 1, "running": 0, "done": 1, "failed": 1, "skipped": 0
    }  # fmt: skip
    assert store.claim(job.id, 10, 150.0, "B", 1e9) == []  # still backing off
    again = store.claim(job.id, 10, 250.0, "B", 1e9)
    assert [item.key for item in again] == ["c"]
    assert again[0].attempts == 1
    items = store.items(job.id, 0, 10)
    assert items[0].result == {"caption": "x"}
    assert items[1].reason == "not an image"


def test_a_live_lease_is_kept_and_a_dead_one_goes_back_to_pending(store: JobStore) -> None:
    job = new_job(store, ["a", "b", "c"])
    assert claim(store, job.id, 2, now=1.0, owner="A") == [0, 1]  # lease until 101
    # Another driver (or this one, started again) leaves live items alone.
    assert claim(store, job.id, 5, now=50.0, owner="B") == [2]
    (a, b), (c,) = store.items(job.id, 0, 2), store.items(job.id, 2, 1)
    store.save_items(job.id, [a.model_copy(update={"state": "done"})], "B")  # not B's
    assert store.counts(job.id)["running"] == 3
    store.renew(job.id, "A", [0], 200.0)  # A still works on item 0; item 1 it lost
    assert claim(store, job.id, 5, now=150.0, owner="C") == [1]
    assert store.counts(job.id) == {
        "pending": 0, "running": 3, "done": 0, "failed": 0, "skipped": 0
    }  # fmt: skip
    # A's late save applies only to what A still holds.
    store.save_items(
        job.id,
        [
            a.model_copy(update={"state": "done"}),
            b.model_copy(update={"state": "done", "reason": "A"}),
        ],
        "A",
    )
    store.save_items(job.id, [c.model_copy(update={"state": "done"})], "B")
    store.save_items(job.id, [b.model_copy(update={"state": "done", "reason": "C"})], "C")
    assert store.counts(job.id) == {
        "pending": 0, "running": 0, "done": 3, "failed": 0, "skipped": 0
    }  # fmt: skip
    assert [item.reason for item in store.items(job.id, 0, 3)] == ["", "C", ""]
    assert claim(store, job.id, 5, now=1e6, owner="D") == []


def test_state_moves_only_from_the_expected_states(store: JobStore) -> None:
    job = new_job(store, ["a"])
    assert store.set_state(job.id, "running", frozenset({"queued"}), now=10.0)
    assert not store.set_state(job.id, "running", frozenset({"queued"}), now=11.0)
    assert store.set_state(job.id, "cancelling", UNFINISHED, now=12.0)
    assert store.set_state(job.id, "cancelled", frozenset({"cancelling"}), now=13.0)
    found = store.get(job.id)
    assert (found.state, found.started, found.finished) == ("cancelled", 10.0, 13.0)
    assert not store.set_state(job.id, "cancelling", UNFINISHED, now=14.0)
    assert store.unfinished() == []


def test_jobs_page_newest_first_and_unfinished_by_priority(store: JobStore) -> None:
    low = new_job(store, ["a"], priority=1)
    high = new_job(store, ["b"], priority=9)
    page, total = store.page(limit=1, offset=0)
    assert total == 2
    assert [job.id for job in page] == [high.id]
    assert store.unfinished() == [high.id, low.id]
    store.add_timings(low.id, {"caption": 1.5})
    store.add_timings(low.id, {"caption": 0.5, "ingest": 2.0})
    assert store.timings(low.id) == {"caption": 2.0, "ingest": 2.0}


def test_an_image_belongs_to_the_first_item_that_brings_it(store: JobStore) -> None:
    job = new_job(store, ["a", "b", "c", "d"])
    assert store.claim_images(job.id, [("x", 0), ("y", 1), ("x", 2)]) == [
        (0, True), (1, True), (0, False)
    ]  # fmt: skip
    # A re-run keeps it, and says the owner ran before.
    assert store.claim_images(job.id, [("x", 0), ("y", 3)]) == [(0, False), (1, False)]
    other = new_job(store, ["a"])
    assert store.claim_images(other.id, [("x", 0)]) == [(0, True)]  # per job
