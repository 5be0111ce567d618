"""Micro-batching: concurrent requests share one call of the batch function."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from mmrag.workers.batching import BatcherClosed, BatcherPool, MicroBatcher


class RecordingBatch:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self._lock:
            self.batches.append(list(items))
        time.sleep(self.delay_s)
        return [item * 10 for item in items]


def test_requests_that_arrive_together_run_as_one_batch() -> None:
    function = RecordingBatch()
    batcher: MicroBatcher[int, int] = MicroBatcher(function, max_size=8, window_s=0.2)
    try:
        assert batcher.run_all([1, 2, 3, 4, 5]) == [10, 20, 30, 40, 50]
        assert function.batches == [[1, 2, 3, 4, 5]]
    finally:
        batcher.close()


def test_batches_never_exceed_the_maximum() -> None:
    function = RecordingBatch()
    batcher: MicroBatcher[int, int] = MicroBatcher(function, max_size=4, window_s=0.2)
    try:
        assert batcher.run_all(list(range(10))) == [value * 10 for value in range(10)]
        assert [len(batch) for batch in function.batches] == [4, 4, 2]
    finally:
        batcher.close()


def test_requests_queued_during_a_forward_pass_share_the_next_one() -> None:
    # The first request holds the model until released (events, not sleeps: a busy
    # machine cannot reorder this); the others queue up meanwhile and run together next.
    entered, release = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def held(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            entered.set()
            release.wait(10)
        return [item * 10 for item in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(held, max_size=16, window_s=0.0)
    try:
        first = batcher.submit(0)
        assert entered.wait(10)
        others = [batcher.submit(value) for value in range(1, 7)]
        release.set()
        assert first.result(timeout=10) == 0
        assert [future.result(timeout=10) for future in others] == [10, 20, 30, 40, 50, 60]
        assert batches == [[0], [1, 2, 3, 4, 5, 6]]
        assert batcher.batches_run == 2
    finally:
        release.set()
        batcher.close()


def test_a_failing_batch_fails_each_of_its_requests_and_the_batcher_goes_on() -> None:
    calls = 0

    def flaky(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("CUDA out of memory")
        return list(items)

    batcher: MicroBatcher[int, int] = MicroBatcher(flaky, max_size=4, window_s=0.05)
    try:
        futures = [batcher.submit(value) for value in (1, 2)]
        for future in futures:
            with pytest.raises(RuntimeError, match="out of memory"):
                future.result(timeout=5)
        assert batcher.run_all([3]) == [3]
    finally:
        batcher.close()


def test_a_batch_function_that_loses_results_is_an_error() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: [], max_size=4, window_s=0.0)
    try:
        with pytest.raises(RuntimeError, match="0 results for 1"):
            batcher.submit(1).result(timeout=5)
    finally:
        batcher.close()


def test_pool_keeps_one_batcher_per_key() -> None:
    pool: BatcherPool[int, int] = BatcherPool(max_size=4, window_s=0.0)
    try:
        first = pool.get(("model", "caption", "short"), RecordingBatch())
        again = pool.get(("model", "caption", "short"), RecordingBatch())
        other = pool.get(("model", "caption", "detailed"), RecordingBatch())
        assert first is again
        assert other is not first
    finally:
        pool.close()


def test_work_submitted_after_close_fails_at_once() -> None:
    batcher = MicroBatcher(RecordingBatch(), max_size=4, window_s=0.01)
    assert batcher.run_all([1, 2]) == [10, 20]
    batcher.close()
    future = batcher.submit(3)
    with pytest.raises(BatcherClosed):
        future.result(timeout=1)
