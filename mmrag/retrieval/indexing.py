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
so it never runs in the serving process. The shard is copied (writes wait, searches go on), a
niced child process builds the copy, and the copy is swapped in with the writes made meanwhile
replayed (every call waits for that reopen). Measured on this project's 2-core machines
(``bench/search_latency.py``, clustered 512-d image + text vectors): see MEASURED below.

MEASURED: filled in from the benchmark.
"""

from __future__ import annotations

import logging
import threading
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


@runtime_checkable
class IndexedOnDemand(Protocol):
    """A store whose engine builds its index only when told to (the edge store)."""

    def index_backlog(self) -> IndexBacklog: ...

    def optimize(self) -> bool: ...

    def cancel_optimize(self) -> None: ...


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
        self._store = store if isinstance(store, IndexedOnDemand) else None
        self._hnsw = hnsw
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._check_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.builds = 0

    def start(self) -> None:
        if self._store is None or not self._hnsw.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mmrag-hnsw", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._store is not None:
            self._store.cancel_optimize()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the index thread did not stop within %.0f s", timeout)
            self._thread = None

    def notify_write(self, count: int = 1) -> None:
        """A hint that ``count`` points were written: look again soon (the store keeps count)."""
        if count > 0:
            self._wake.set()

    def check_once(self) -> bool:
        """Build now if due; True when a build ran and changed the index."""
        if self._store is None:
            return False
        with self._check_lock:
            if not build_due(self._store.index_backlog(), self._hnsw):
                return False
            built = self._store.optimize()
            if built:
                self.builds += 1
            return built

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
