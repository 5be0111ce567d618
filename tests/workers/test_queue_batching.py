"""Requests merged into one task on their way to a real worker: each caller still gets its
own results, a bad image fails alone, and a worker killed mid-batch loses nothing.

Real Redis, real ``mmrag worker`` processes, the tiny random-weight VLM.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
import redis
from workers.shapes_scenes import held_out, png_of
from workers.worker_settings import worker_environment

from mmrag.config import Settings
from mmrag.errors import Unavailable
from mmrag.retrieval.blobs import FilesystemBlobStore
from mmrag.testing.celery_worker import CeleryWorker
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.protocol import ItemResult, ToolItem, ToolTask
from mmrag.workers.results import ResultLedger
from mmrag.workers.runner import CeleryRunner

pytestmark = pytest.mark.slow


def stored_scenes(settings: Settings, count: int) -> list[str]:
    """``count`` scenes as original blobs; their SHA-256s."""
    blobs = FilesystemBlobStore.from_settings(settings)
    shas = []
    for scene in held_out(count):
        data = png_of(scene)
        sha = hashlib.sha256(data).hexdigest()
        blobs.put("original", sha, data)
        shas.append(sha)
    return shas


def merging(settings: Settings, **workers: object) -> Settings:
    """The API's settings with a window wide enough that concurrent requests always merge."""
    data = settings.model_dump()
    data["workers"].update({"batch_window_ms": 500, **workers})
    return Settings.model_validate(data)


@pytest.fixture
def runner(celery_settings: Settings) -> Iterator[CeleryRunner]:
    opened = CeleryRunner(merging(celery_settings))
    try:
        yield opened
    finally:
        opened.close()


def together(calls: list[Callable[[], list[ItemResult]]]) -> list[list[ItemResult] | Exception]:
    """Every call on its own thread, started together; each one's results or exception."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], list[ItemResult]]) -> list[ItemResult] | Exception:
        start.wait()
        try:
            return call()
        except Exception as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def caption_task(settings: Settings, shas: list[str]) -> ToolTask:
    items = tuple(ToolItem(sha256=sha) for sha in shas)
    return ToolTask(tool="caption", model=settings.model_spec("vlm"), items=items)


def test_merged_requests_get_their_own_results_and_a_bad_image_fails_alone(
    celery_settings: Settings, celery_worker: CeleryWorker, runner: CeleryRunner
) -> None:
    shas = stored_scenes(celery_settings, 5)
    corrupt = b"not an image at all"
    corrupt_sha = hashlib.sha256(corrupt).hexdigest()
    FilesystemBlobStore.from_settings(celery_settings).put("original", corrupt_sha, corrupt)
    tasks = [
        caption_task(celery_settings, [shas[0]]),
        caption_task(celery_settings, [shas[1], corrupt_sha, shas[2]]),
        caption_task(celery_settings, [shas[3], shas[4]]),
    ]
    outcomes = together([partial(runner.run, task, 60) for task in tasks])
    assert runner.coalescer.tasks_sent == 1  # one message through Redis for all three
    first, second, third = outcomes
    assert isinstance(first, list)
    assert isinstance(second, list)
    assert isinstance(third, list)
    assert len(first) == 1
    assert len(second) == 3
    assert len(third) == 2
    assert all(isinstance(result.get("caption"), str) for result in first + third)
    assert isinstance(second[0].get("caption"), str)
    assert isinstance(second[2].get("caption"), str)
    assert second[1]["error"]["type"] == "UnsupportedMedia"  # its own envelope, its neighbours fine


def test_a_merged_task_that_fails_whole_runs_again_per_request(
    celery_settings: Settings, redis_server: RedisServer, tmp_path: Path, runner: CeleryRunner
) -> None:
    good = stored_scenes(celery_settings, 2)
    # A directory where a blob should be: reading it is an OSError, as a flaky volume gives,
    # and the worker retries the whole task, then fails it.
    broken_sha = "ef" * 32
    (celery_settings.blobs_dir / "original" / broken_sha[:2] / broken_sha).mkdir(parents=True)
    env = {**worker_environment(celery_settings), "MMRAG_WORKERS__MAX_RETRIES": "1"}
    with CeleryWorker(env, redis_server.url, tmp_path / "worker.log"):
        outcomes = together(
            [
                lambda: runner.run(caption_task(celery_settings, [good[0]]), timeout_s=60),
                lambda: runner.run(caption_task(celery_settings, [broken_sha]), timeout_s=60),
                lambda: runner.run(caption_task(celery_settings, [good[1]]), timeout_s=60),
            ]
        )
    fine_first, broken, fine_last = outcomes
    assert isinstance(broken, Unavailable)
    assert "IsADirectoryError" in broken.detail
    for fine in (fine_first, fine_last):
        assert isinstance(fine, list), fine
        assert isinstance(fine[0].get("caption"), str), fine
    assert runner.coalescer.tasks_sent == 4  # the merged task, then each request alone


def started_task(server: RedisServer, timeout_s: float, log: Callable[[], str]) -> str:
    """The id of the first task the result backend shows as started."""
    client = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            for key in client.scan_iter("celery-task-meta-*"):
                meta = json.loads(client.get(key) or b"{}")
                if meta.get("status") == "STARTED":
                    return str(meta["task_id"])
            assert time.monotonic() < deadline, log()
            time.sleep(0.02)
    finally:
        client.close()


def test_a_worker_killed_mid_batch_leaves_the_merged_task_to_another(
    celery_settings: Settings, redis_server: RedisServer, tmp_path: Path
) -> None:
    # The kill lands as the task starts (model load, first passes); few enough images that
    # the second worker finishes them within the task time limit (20 s) on a busy machine.
    shas = stored_scenes(celery_settings, 48)
    requests = [shas[start : start + 8] for start in range(0, len(shas), 8)]
    runner = CeleryRunner(merging(celery_settings, send_batch_max=1024))
    env = worker_environment(celery_settings)
    first = CeleryWorker(env, redis_server.url, tmp_path / "first.log", hostname="first")
    first.start()
    try:
        with ThreadPoolExecutor(len(requests)) as callers:
            pending = [
                callers.submit(runner.run, caption_task(celery_settings, request), 120)
                for request in requests
            ]
            task_id = started_task(redis_server, 60, first.log)
            first.kill()  # mid-batch: every request of it unacknowledged
            ledger = ResultLedger(redis_server.client())
            assert ledger.find(task_id) is None  # the killed run stored nothing
            second = CeleryWorker(env, redis_server.url, tmp_path / "second.log", hostname="second")
            with second:
                # Back after the visibility timeout (25 s here), then run by the second worker.
                answered = [caller.result(timeout=120) for caller in pending]
        assert runner.coalescer.tasks_sent == 1
        for request, results in zip(requests, answered, strict=True):
            assert len(results) == len(request)
            failed = [result for result in results if not isinstance(result.get("caption"), str)]
            assert not failed
        # Stored once, and each caller got its own slice of it (merged in arrival order).
        stored = ledger.find(task_id)
        assert stored is not None
        assert len(stored) == len(shas)
        for results in answered:
            starts = range(0, len(stored), len(results))
            assert any(stored[start : start + len(results)] == results for start in starts)
        assert task_id in second.log()
    finally:
        first.kill()
        runner.close()
