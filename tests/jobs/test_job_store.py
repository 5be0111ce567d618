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
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all() -> None:
        while batch := store.claim(job.id, 7, now=1e12):
            with lock:
                claimed.extend(item.seq for item in batch)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(200))  # each once
    assert store.counts(job.id)["running"] == 200


def test_saved_items_move_counts_and_retries_wait_for_their_time(store: JobStore) -> None:
    job = new_job(store, ["a", "b", "c"])
    a, b, c = store.claim(job.id, 10, now=100.0)
    done = a.model_copy(update={"state": "done", "result": {"caption": "x"}, "image_id": "i" * 32})
    failed = b.model_copy(update={"state": "failed", "reason": "not an image", "attempts": 1})
    retry = c.model_copy(update={"state": "pending", "attempts": 1, "not_before": 200.0})
    store.save_items(job.id, [done, failed, retry])
    assert store.counts(job.id) == {
        "pending": 1, "running": 0, "done": 1, "failed": 1, "skipped": 0
    }  # fmt: skip
    assert store.claim(job.id, 10, now=150.0) == []  # still backing off
    again = store.claim(job.id, 10, now=250.0)
    assert [item.key for item in again] == ["c"]
    assert again[0].attempts == 1
    items = store.items(job.id, 0, 10)
    assert items[0].result == {"caption": "x"}
    assert items[1].reason == "not an image"


def test_a_restart_puts_running_items_back(store: JobStore) -> None:
    job = new_job(store, ["a", "b", "c"])
    store.claim(job.id, 2, now=1.0)
    assert store.reset_running(job.id) == 2
    assert store.counts(job.id)["pending"] == 3
    assert [item.key for item in store.claim(job.id, 5, now=1.0)] == ["a", "b", "c"]


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
    assert store.claim_images(job.id, [("x", 0), ("y", 1), ("x", 2)]) == [0, 1, 0]
    assert store.claim_images(job.id, [("x", 0), ("y", 3)]) == [0, 1]  # a re-run keeps it
    other = new_job(store, ["a"])
    assert store.claim_images(other.id, [("x", 0)]) == [0]  # per job
