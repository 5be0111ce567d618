"""Micro-batching: requests that arrive together run as one forward pass.

Worker threads (one per task in flight) each submit their items and wait. A single runner
thread per batch key takes whatever is queued, waits up to ``window_s`` for more, up to
``max_size``, and calls the batch function once. A lone request pays at most the window;
a burst is served at the model's batch throughput.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

BatchFunction = Callable[[Sequence[T]], Sequence[R]]


class BatcherClosed(RuntimeError):
    """Work submitted after shutdown began."""


@dataclass
class _Request(Generic[T, R]):
    item: T
    future: Future[R]


class MicroBatcher(Generic[T, R]):
    """Runs ``function`` over batches of submitted items, on one daemon thread."""

    def __init__(
        self, function: BatchFunction[T, R], max_size: int, window_s: float, name: str = ""
    ) -> None:
        self._function = function
        self._max_size = max_size
        self._window_s = window_s
        self._queue: queue.SimpleQueue[_Request[T, R] | None] = queue.SimpleQueue()
        # Guards the closed flag against a submit racing close(): nothing may be queued after
        # the runner thread has gone, or its waiter would wait for ever.
        self._closing = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()
        self.batches_run = 0  # for tests and metrics

    def submit(self, item: T) -> Future[R]:
        future: Future[R] = Future()
        with self._closing:
            if self._closed:
                future.set_exception(BatcherClosed("the batcher is shut down"))
                return future
            self._queue.put(_Request(item, future))
        return future

    def run_all(self, items: Sequence[T]) -> list[R]:
        """Submit every item and wait for all results (an item's exception is raised)."""
        futures = [self.submit(item) for item in items]
        return [future.result() for future in futures]

    def close(self) -> None:
        """Stop taking work. What was queued before runs still: the queue is first in, first
        out, and nothing can be queued behind the close marker."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, closing = self._collect(first)
            self._execute(batch)
            if closing:
                return

    def _collect(self, first: _Request[T, R]) -> tuple[list[_Request[T, R]], bool]:
        """The batch that starts with ``first``; True when close() arrived meanwhile."""
        batch = [first]
        deadline = time.monotonic() + self._window_s
        while len(batch) < self._max_size:
            try:
                request = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if request is None:
                return batch, True
            batch.append(request)
        return batch, False

    def _execute(self, batch: list[_Request[T, R]]) -> None:
        live = [request for request in batch if request.future.set_running_or_notify_cancel()]
        if not live:
            return
        self.batches_run += 1
        try:
            results = self._function([request.item for request in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch function gave {len(results)} results for {len(live)}")
        except BaseException as error:  # handed to every waiter, who re-raises it
            for request in live:
                request.future.set_exception(error)
            return
        for request, result in zip(live, results, strict=True):
            request.future.set_result(result)


class BatcherPool(Generic[T, R]):
    """One :class:`MicroBatcher` per key (model, tool and the arguments that must match)."""

    def __init__(self, max_size: int, window_s: float) -> None:
        self._max_size = max_size
        self._window_s = window_s
        self._batchers: dict[Hashable, MicroBatcher[T, R]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, function: BatchFunction[T, R]) -> MicroBatcher[T, R]:
        with self._lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = MicroBatcher(function, self._max_size, self._window_s, str(key))
                self._batchers[key] = batcher
            return batcher

    def batches_run(self) -> int:
        """Forward passes run so far, over every key (for tests and benchmarks)."""
        with self._lock:
            return sum(batcher.batches_run for batcher in self._batchers.values())

    def close(self) -> None:
        with self._lock:
            batchers = list(self._batchers.values())
            self._batchers.clear()
        for batcher in batchers:
            batcher.close()
