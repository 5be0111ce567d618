"""The sender's side of batching: tool tasks that wait together leave as one Celery task.

Why: through the queue every task pays its own trip (the API's heartbeat check and
publish, the worker's fetch, ledger check, started and result writes, acknowledgement, the
caller's result subscription): an empty task's round trip was 7.5 ms p50 here
(``bench.queue_overhead``, 2 shared cores), more than a small model's batched forward pass
per image. The worker's micro-batcher merges the tasks in flight together, but with 16
single-image requests in flight it formed batches of only 2.0-2.7 images
(``bench.tool_throughput``, ``celery.worker_batched.mean_batch_size``): the trips spread the
requests' arrivals out, and the worker spent its time on them. Sending one task for many
requests pays the trip once per batch instead of once per image.

How: requests for the same tool and model queue per *lane*. One sender thread at a time
collects a batch: the first request, then whatever arrives within ``window_s``, up to
``max_items`` items (a request is never split; one larger than that goes alone). It sends
the batch as one :class:`ToolTask` of all the items, and the next thread collects the next
batch meanwhile, so up to ``in_flight`` batches of a lane are out at once (several workers
can then be kept busy from one API process). Each caller gets its own items' results back.

What stays as it was:

- *Per-item failure isolation* is the worker's (``executor._isolated``): a bad image gets
  its own error envelope in the merged task, and every other request its results. A
  merged task that fails as a whole (a transient error, such as an unreadable blob, past
  its retries) is sent again as one task per request, so only the request that caused it
  fails, as a job's batch does; no worker or no broker is answered to all at once.
- *acks_late redelivery*: the merged task is one message, acknowledged after it ran; a
  worker killed mid-batch leaves it unacknowledged, Redis hands it to another worker after
  the visibility timeout, and the result ledger keeps one result per task id.

Weighed and not taken: batches formed only in the worker (more prefetch, or
``celery-batches``, which acknowledges a batch's messages after its function returns) still
pay every message's trip and result write; the worker's threads already hand concurrent
tasks to the micro-batcher together. The senders with many items at once (jobs, the agent's
``tool_batch``) already send them as one task; this adds the single-image API calls that
arrive together, and lets those multi-item tasks share a trip too.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from mmrag.errors import BackendDown, Unavailable
from mmrag.workers.protocol import ItemResult, ToolName, ToolTask

log = logging.getLogger(__name__)

# Sends one task and waits for its results (at most the given seconds), or raises.
SendTask = Callable[[ToolTask, float], list[ItemResult]]
# A caller waits this much past its own timeout: the send itself gives up at the timeout.
_WAIT_MARGIN_S = 5.0


@dataclass
class _Request:
    task: ToolTask
    deadline: float  # time.monotonic() past which the caller no longer waits
    future: Future[list[ItemResult]]


class TaskCoalescer:
    """Merges concurrent tasks of one tool and model into one sent task."""

    def __init__(self, send: SendTask, max_items: int, window_s: float, in_flight: int) -> None:
        self._send = send
        self._max_items = max_items
        self._window_s = window_s
        self._in_flight = in_flight
        self._lanes: dict[tuple[ToolName, str], _Lane] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.tasks_sent = 0  # for tests and benchmarks

    def run(self, task: ToolTask, timeout_s: float) -> list[ItemResult]:
        """``task``'s results, in order, sent alone or with others; raises what the send
        raised, or :class:`Unavailable` when no result came within ``timeout_s``."""
        future: Future[list[ItemResult]] = Future()
        with self._lock:
            if self._closed:
                raise Unavailable("the task sender is shut down")
            lane = self._lanes.get((task.tool, task.model))
            if lane is None:
                lane = _Lane(self, f"{task.tool}-{len(self._lanes)}")
                self._lanes[(task.tool, task.model)] = lane
            lane.put(_Request(task, time.monotonic() + timeout_s, future))
        try:
            return future.result(timeout=timeout_s + _WAIT_MARGIN_S)
        except FutureTimeout:
            raise Unavailable(f"{task.tool} gave no result within {timeout_s:.0f} s") from None

    def close(self) -> None:
        """Stop the senders; requests still queued are answered as unavailable."""
        with self._lock:
            self._closed = True
            lanes = list(self._lanes.values())
            self._lanes.clear()
        for lane in lanes:
            lane.close()

    def _dispatch(self, batch: list[_Request]) -> None:
        """Send ``batch`` as one task; hand each request its slice of the results."""
        live = [request for request in batch if request.future.set_running_or_notify_cancel()]
        if not live:
            return
        first = live[0].task
        merged = ToolTask(
            tool=first.tool,
            model=first.model,
            items=tuple(item for request in live for item in request.task.items),
        )
        # The latest deadline: nobody merged is cut short by a neighbour's shorter wait.
        timeout_s = max(request.deadline for request in live) - time.monotonic()
        with self._lock:
            self.tasks_sent += 1
        try:
            results = self._send(merged, max(timeout_s, 0.001))
        except Exception as error:
            if len(live) == 1 or isinstance(error, BackendDown):
                # Alone, or the same for everyone (no worker, no broker): said at once.
                for request in live:
                    request.future.set_exception(error)
                return
            # The task failed as a whole (a transient error past its retries): perhaps one
            # request's doing. Each runs again alone, so only that one fails.
            log.info("a merged %s task failed (%s): its %d requests run alone", merged.tool,
                     error, len(live))  # fmt: skip
            for request in live:
                threading.Thread(
                    target=self._dispatch_alone, args=(request,), name="sender-alone", daemon=True
                ).start()
            return
        except BaseException as error:  # interpreter exit: handed on, nothing run again
            for request in live:
                request.future.set_exception(error)
            raise
        start = 0
        for request in live:
            end = start + len(request.task.items)
            request.future.set_result(results[start:end])
            start = end

    def _dispatch_alone(self, request: _Request) -> None:
        with self._lock:
            self.tasks_sent += 1
        remaining = request.deadline - time.monotonic()
        if remaining <= 0:
            request.future.set_exception(Unavailable("the request ran out of time"))
            return
        try:
            request.future.set_result(self._send(request.task, remaining))
        except BaseException as error:
            request.future.set_exception(error)


class _Lane:
    """The queue of one tool and model, and its sender threads."""

    def __init__(self, owner: TaskCoalescer, name: str) -> None:
        self._owner = owner
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        # One thread collects at a time, so concurrent senders never split a batch between
        # them; the others are sending theirs meanwhile.
        self._collecting = threading.Lock()
        self._carried: _Request | None = None  # did not fit the last batch: heads the next
        self._closing = False
        self._threads = [
            threading.Thread(target=self._run, name=f"sender-{name}-{index}", daemon=True)
            for index in range(owner._in_flight)
        ]
        for thread in self._threads:
            thread.start()

    def put(self, request: _Request) -> None:
        self._queue.put(request)

    def close(self) -> None:
        self._closing = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        # What no thread took: its caller must not wait out its whole timeout.
        leftovers = [self._carried] if self._carried else []
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if request is not None:
                leftovers.append(request)
        for request in leftovers:
            _fail(request, "the task sender is shut down")

    def _run(self) -> None:
        while True:
            with self._collecting:
                batch = self._collect()
            if batch is None:
                return
            self._owner._dispatch(batch)

    def _collect(self) -> list[_Request] | None:
        """The next batch; None once the lane is closing."""
        while True:
            first = self._carried or self._queue.get()
            self._carried = None
            if first is None:
                return None
            if not self._closing:
                break
            _fail(first, "the task sender is shut down")
        batch = [first]
        items = len(first.task.items)
        deadline = time.monotonic() + self._owner._window_s
        while items < self._owner._max_items:
            try:
                request = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if request is None:  # closing: send what was collected, then stop
                self._queue.put(None)
                break
            if items + len(request.task.items) > self._owner._max_items:
                self._carried = request
                break
            batch.append(request)
            items += len(request.task.items)
        return _unexpired(batch)


def _unexpired(batch: list[_Request]) -> list[_Request]:
    """The requests whose callers still wait; the others are told (they gave up already)."""
    now = time.monotonic()
    live = []
    for request in batch:
        if request.deadline > now:
            live.append(request)
        else:
            _fail(request, "the request expired in the send queue")
    return live


def _fail(request: _Request, why: str) -> None:
    if request.future.set_running_or_notify_cancel():
        request.future.set_exception(Unavailable(why))
