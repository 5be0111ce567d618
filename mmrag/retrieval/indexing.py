"""When the embedded store builds its HNSW graph.

qdrant-edge never indexes by itself: points land in a plain segment that every search scans
brute force, and ``EdgeShard.optimize()`` builds the graph when asked. This module asks.

Policy (``build_due``), with the thresholds of ``HnswSettings``:

- never below ``min_points`` points: a scan is as fast as the graph there;
- once ``rebuild_after`` points arrived since the last build, and the store has seen no write
  for ``idle_seconds``: building in the middle of a bulk ingest would index a segment that is
  still growing, and the writes made during a build are replayed afterwards;
- or, without waiting for quiet, once ``FORCE_FACTOR * rebuild_after`` points are unindexed:
  a steady trickle of writes must not keep every search on brute force forever.

How a build runs (``EdgeVectorStore.optimize``): optimize() holds the GIL for the whole build,
so it never runs in the serving process. The live shard generation is copied (writes wait,
searches go on), a niced child process builds the copy, the copy is opened and given the
writes made meanwhile (writes wait; the binding's load holds the GIL), and it is published by
an atomic pointer swap. The engine then merges the new points into the existing graph
(reusing it: +20k points on 200k cost 42 CPU s against 110 for the 200k), up to its segment
cap (~200k of our points at 2 cores); beyond, builds leave one more graph each, and once the
writes stop for ``merge_after_idle_s`` one build merges them (``merge_due``): each graph is
searched on its own (more segments: p50 0.4 -> 2.0 ms at 8k + 4k + 4k points; 7.1 against
5.2 ms at a million). A write that finds ``max_unindexed`` points waiting for a running build
waits for it, so a bulk fill keeps pace with the builds.

Measured (``bench/search_latency.py``, 512-d clustered image + text vectors, HnswSettings
defaults m=16, ef_construct=100, ef_search=128; 2 cores shared with other work, load 6-10):

=====================================  ===========  ===========
text-to-image top 10, no filter        10k points   100k points
=====================================  ===========  ===========
brute force (before the build), p50    1.2 ms       20.3 ms
HNSW, p50 / p99                        0.35 / 1.6   1.6 / 3.7 ms
recall@10, HNSW vs exact               1.0          0.996
build in the child (niced, contended)  13 s         539 s
copy / swap (writes wait meanwhile)    0.4 / 1.2 s  4.7 / 2.2 s
searches during the build, p50 / max   1.9 / 40 ms  26 / 274 ms
longest stall during the build         0.36 s       1.6 s (the swap: load holds GIL)
in-process optimize(): searches run    none for 13 s (every thread frozen)
=====================================  ===========  ===========

A ViT-B-32 text tower encodes one query in ~190 ms here (1 thread; 2 threads collapse to
~2.8 s on this busy machine), so below ``min_points`` (10k, 1.2 ms brute force) the graph
cannot make a search noticeably faster; at 100k it turns 20 ms into 1.6 ms.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mmrag.config import HnswSettings
from mmrag.retrieval.store import VectorStore

log = logging.getLogger(__name__)

FORCE_FACTOR = 4
# After a failed build, wait this long before trying again (a full disk does not heal at once).
_RETRY_AFTER_ERROR_S = 60.0


@dataclass(frozen=True)
class IndexBacklog:
    points: int
    unindexed_points: int  # written since the last build (re-writes included)
    seconds_since_write: float  # since the last write, or since the store was opened
    segments: int = 2  # the engine's, the appendable one included (one graph: 2)


@runtime_checkable
class IndexedOnDemand(Protocol):
    """A store whose engine builds its index only when told to (the edge store)."""

    def index_backlog(self) -> IndexBacklog: ...

    def optimize(self) -> bool: ...

    def merge_segments(self) -> bool: ...

    def cancel_optimize(self) -> None: ...


def on_demand(store: object) -> IndexedOnDemand | None:
    """The store whose index is built on demand: a switchable store's current collection
    (looked up at every call, so that a re-index's switch moves the builds to the new one)."""
    current = getattr(store, "current", store)
    return current if isinstance(current, IndexedOnDemand) else None


def build_now(store: object, hnsw: HnswSettings) -> bool:
    """Index whatever is unindexed, now, unless a scan serves as well (``min_points``): for a
    collection about to serve, such as a re-index's before its switch. Waits for the build;
    True when one ran."""
    target = on_demand(store)
    if target is None or not hnsw.enabled:
        return False
    backlog = target.index_backlog()
    if backlog.points < hnsw.min_points or backlog.unindexed_points == 0:
        return False
    return target.optimize()


def merge_due(backlog: IndexBacklog, hnsw: HnswSettings) -> bool:
    """Three graphs or more (builds made while a large collection filled), and the writes
    have stopped for ``merge_after_idle_s``: merged into one, searches and reopening get
    faster (at a million: p50 7.1 -> 5.2 ms, reopen 18.4 -> 9.0 s). Two are left alone: the
    second is then mostly the small one a later trickle of writes made, and merging it would
    rewrite the large one for little gain."""
    return (
        hnsw.enabled
        and backlog.segments > 3
        and backlog.seconds_since_write >= hnsw.merge_after_idle_s
    )


def build_due(backlog: IndexBacklog, hnsw: HnswSettings) -> bool:
    if not hnsw.enabled or backlog.points < hnsw.min_points:
        return False
    if backlog.unindexed_points < hnsw.rebuild_after:
        return False
    if backlog.unindexed_points >= FORCE_FACTOR * hnsw.rebuild_after:
        return True
    return backlog.seconds_since_write >= hnsw.idle_seconds


class IndexScheduler:
    """A daemon thread that builds the index when ``build_due`` says so.

    Does nothing for a store that indexes by itself (a Qdrant server). ``stop()`` cancels a
    running build; the store stays consistent either way.
    """

    def __init__(
        self, store: VectorStore, hnsw: HnswSettings, *, poll_seconds: float = 1.0
    ) -> None:
        self._store = store
        self._hnsw = hnsw
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._check_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.builds = 0
        self._merged_at: float | None = None

    def start(self) -> None:
        if on_demand(self._store) is None or not self._hnsw.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mmrag-hnsw", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0, *, cancel_build: bool = True) -> None:
        """End the thread; with ``cancel_build=False`` a running build finishes first."""
        self._stop.set()
        self._wake.set()
        store = on_demand(self._store)
        if store is not None and cancel_build:
            store.cancel_optimize()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the index thread did not stop within %s s", timeout)
            self._thread = None

    def notify_write(self, count: int = 1) -> None:
        """A hint that ``count`` points were written: look again soon (the store keeps count)."""
        if count > 0:
            self._wake.set()

    def check_once(self) -> bool:
        """Build now if due; True when a build ran and changed the index."""
        store = on_demand(self._store)
        if store is None:
            return False
        with self._check_lock:
            backlog = store.index_backlog()
            if build_due(backlog, self._hnsw):
                built = store.optimize()
            elif merge_due(backlog, self._hnsw) and self._written_since_merge(backlog):
                self._merged_at = time.monotonic()
                built = store.merge_segments()
            else:
                return False
            if built:
                self.builds += 1
            return built

    def _written_since_merge(self, backlog: IndexBacklog) -> bool:
        # One merge per quiet spell: one that leaves several segments is not retried each poll.
        last_write = time.monotonic() - backlog.seconds_since_write
        return self._merged_at is None or last_write > self._merged_at

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check_once()
            except Exception:
                # The thread must outlive a failed build (the live shard is untouched by one).
                log.exception("HNSW build failed; retrying in %.0f s", _RETRY_AFTER_ERROR_S)
                self._stop.wait(_RETRY_AFTER_ERROR_S)
