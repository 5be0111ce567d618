"""The HNSW build policy and the thread that applies it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import pytest

from mmrag.config import HnswSettings, StoreBackend, StoreSettings
from mmrag.retrieval.indexing import (
    FORCE_FACTOR,
    IndexBacklog,
    IndexScheduler,
    build_due,
    merge_due,
)
from mmrag.retrieval.store import ImagePoint, VectorStore
from mmrag.retrieval.store_edge import EdgeVectorStore
from mmrag.retrieval.store_qdrant import QdrantServerStore
from mmrag.retrieval.switchable import SwitchableStore

DIM = 16
HNSW = HnswSettings(min_points=100, rebuild_after=50, idle_seconds=0.3)


def iid(number: int) -> str:
    return f"{number:032x}"


def vectors(count: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, DIM))
    out = centres[rng.integers(0, 6, count)] + 0.3 * rng.normal(size=(count, DIM))
    unit: npt.NDArray[np.float32] = (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def add(store: EdgeVectorStore, start: int, data: npt.NDArray[np.float32]) -> None:
    store.upsert([ImagePoint(iid(start + n), v, {"n": start + n}) for n, v in enumerate(data)])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeVectorStore]:
    edge = EdgeVectorStore(tmp_path, StoreSettings(hnsw=HNSW))
    edge.ensure_collection(DIM)
    yield edge
    edge.close()


@pytest.mark.parametrize(
    ("backlog", "due"),
    [
        (IndexBacklog(points=99, unindexed_points=99, seconds_since_write=60), False),
        (IndexBacklog(points=100, unindexed_points=49, seconds_since_write=60), False),
        (IndexBacklog(points=100, unindexed_points=50, seconds_since_write=0.1), False),
        (IndexBacklog(points=100, unindexed_points=50, seconds_since_write=0.3), True),
        (
            IndexBacklog(points=5000, unindexed_points=50 * FORCE_FACTOR, seconds_since_write=0),
            True,
        ),
    ],
    ids=["too-few-points", "too-few-new", "still-writing", "quiet", "backlog-too-long"],
)
def test_build_due(backlog: IndexBacklog, due: bool) -> None:
    assert build_due(backlog, HNSW) is due


@pytest.mark.parametrize(
    ("segments", "quiet_s", "due"),
    [(3, 10**6, False), (4, 1.0, False), (4, 120.0, True), (6, 10**6, True)],
)
def test_merge_due(segments: int, quiet_s: float, due: bool) -> None:
    backlog = IndexBacklog(
        points=10**6, unindexed_points=0, seconds_since_write=quiet_s, segments=segments
    )
    assert merge_due(backlog, HnswSettings(merge_after_idle_s=120.0)) is due


def test_disabled_never_builds() -> None:
    backlog = IndexBacklog(points=10**6, unindexed_points=10**6, seconds_since_write=10**6)
    assert not build_due(backlog, HNSW.model_copy(update={"enabled": False}))


def test_scheduler_builds_when_due_and_results_stay_exact(store: EdgeVectorStore) -> None:
    scheduler = IndexScheduler(store, HNSW)
    first = vectors(80, seed=1)
    add(store, 0, first)
    time.sleep(HNSW.idle_seconds)
    assert not scheduler.check_once()  # below min_points

    second = vectors(60, seed=2)
    add(store, 80, second)
    assert not scheduler.check_once()  # writes just happened
    time.sleep(HNSW.idle_seconds)
    all_vectors = np.concatenate([first, second])
    queries = vectors(5, seed=3)
    before = [[hit.image_id for hit in store.search(q, "image", 10)] for q in queries]

    assert scheduler.check_once()

    assert store.info().indexed_vectors == 140
    assert store.index_backlog().unindexed_points == 0
    after = [[hit.image_id for hit in store.search(q, "image", 10)] for q in queries]
    exact = [[iid(int(n)) for n in np.argsort(-(all_vectors @ q))[:10]] for q in queries]
    assert after == before == exact

    add(store, 200, vectors(20, seed=4))
    time.sleep(HNSW.idle_seconds)
    assert not scheduler.check_once()  # fewer than rebuild_after new points
    assert scheduler.builds == 1


def test_the_services_switchable_store_is_built_and_a_switch_moves_the_builds(
    tmp_path: Path,
) -> None:
    first = EdgeVectorStore(tmp_path / "first", StoreSettings(hnsw=HNSW))
    second = EdgeVectorStore(tmp_path / "second", StoreSettings(hnsw=HNSW))
    switchable = SwitchableStore(first)
    scheduler = IndexScheduler(switchable, HNSW)  # as the service holds it
    try:
        for edge in (first, second):
            edge.ensure_collection(DIM)
            add(edge, 0, vectors(150, seed=6))
        time.sleep(HNSW.idle_seconds)

        assert scheduler.check_once()
        assert first.info().indexed_vectors == 150

        switchable.switch(second)
        assert scheduler.check_once()
        assert second.info().indexed_vectors == 150
    finally:
        first.close()
        second.close()


def test_scheduler_thread_builds_in_the_background(store: EdgeVectorStore) -> None:
    scheduler = IndexScheduler(store, HNSW, poll_seconds=0.05)
    scheduler.start()
    try:
        add(store, 0, vectors(150, seed=5))
        scheduler.notify_write(150)
        deadline = time.monotonic() + 60
        while scheduler.builds == 0:
            assert time.monotonic() < deadline, "no build happened"
            time.sleep(0.05)
        assert store.info().indexed_vectors == 150
    finally:
        scheduler.stop()


class _SlowBuildStore:
    """Always due; optimize() runs until cancelled."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def index_backlog(self) -> IndexBacklog:
        return IndexBacklog(points=10**6, unindexed_points=10**6, seconds_since_write=10**6)

    def optimize(self) -> bool:
        self.started.set()
        self.cancelled.wait(30)
        return False

    def merge_segments(self) -> bool:
        return self.optimize()

    def cancel_optimize(self) -> None:
        self.cancelled.set()


def test_stop_cancels_a_running_build() -> None:
    slow = _SlowBuildStore()
    scheduler = IndexScheduler(cast(VectorStore, slow), HNSW, poll_seconds=0.01)
    scheduler.start()
    assert slow.started.wait(10)

    began = time.monotonic()
    scheduler.stop(timeout=5)

    assert slow.cancelled.is_set()
    assert time.monotonic() - began < 2


def test_a_server_store_is_left_to_its_own_indexing() -> None:
    server = QdrantServerStore(StoreSettings(backend=StoreBackend.QDRANT, url=":memory:"))
    scheduler = IndexScheduler(server, HNSW)
    scheduler.start()
    assert not scheduler.check_once()
    scheduler.stop()
    server.close()
