"""Where tool tasks run: :class:`InProcessRunner` (embedded) or :class:`CeleryRunner`.

The API and the agent talk to :class:`TaskRunner` only. Both runners return one result per
item or raise a domain error; neither ever waits longer than the timeout it is given.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import KombuError, OperationalError

from mmrag.config import Settings
from mmrag.errors import BackendDown, Unavailable
from mmrag.retrieval.blobs import BlobStore
from mmrag.workers.celery_app import create_celery_app, queue_name, task_name
from mmrag.workers.coalescing import TaskCoalescer
from mmrag.workers.executor import ToolExecutor
from mmrag.workers.heartbeat import live_workers
from mmrag.workers.protocol import TOOL_QUEUES, ItemResult, ToolName, ToolTask

log = logging.getLogger(__name__)


class TaskRunner(Protocol):
    mode: str

    def run(self, task: ToolTask, timeout_s: float) -> list[ItemResult]:
        """One result per item, in order (error envelopes for bad items). Raises
        :class:`Unavailable` when no worker can take the task or none answers in time."""
        ...

    def readiness(self, tool: ToolName) -> str:
        """``"ok"``, or why ``tool`` cannot run now."""
        ...

    def close(self) -> None: ...


class InProcessRunner:
    """Runs tasks on this process's threads, with the same executor a worker uses."""

    mode = "embedded"

    def __init__(self, executor: ToolExecutor, concurrency: int) -> None:
        self.executor = executor
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="tool")
        executor.start_sweeper()

    @classmethod
    def from_settings(cls, settings: Settings, executor: ToolExecutor) -> InProcessRunner:
        return cls(executor, settings.workers.concurrency)

    def run(self, task: ToolTask, timeout_s: float) -> list[ItemResult]:
        future = self._pool.submit(self.executor.run, task, timeout_s)
        try:
            # A little over the executor's own deadline: it reports late items itself.
            return future.result(timeout=timeout_s + 5)
        except FutureTimeout:
            # Still queued behind busy threads: drop it, nobody waits for its result any more.
            future.cancel()
            raise Unavailable(f"{task.tool} gave no result within {timeout_s:.0f} s") from None

    def readiness(self, tool: ToolName) -> str:
        return "ok"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.executor.close()


class CeleryRunner:
    """Sends tasks to Celery workers through Redis and waits for their results; tasks of
    one tool and model that wait together leave as one (:mod:`mmrag.workers.coalescing`)."""

    mode = "celery"

    def __init__(self, settings: Settings) -> None:
        workers = settings.workers
        self.settings = settings
        self.app = create_celery_app(settings)
        self._redis = redis.Redis.from_url(
            workers.broker_url, socket_connect_timeout=2, socket_timeout=2
        )
        self.coalescer = TaskCoalescer(
            self._send,
            max_items=workers.send_batch_max,
            window_s=workers.batch_window_ms / 1000,
            in_flight=workers.send_in_flight,
        )

    def run(self, task: ToolTask, timeout_s: float) -> list[ItemResult]:
        # Checked per request, before it waits in a batch: no worker is a 503 at once.
        self._require_worker(task.tool)
        return self.coalescer.run(task, timeout_s)

    def _send(self, task: ToolTask, timeout_s: float) -> list[ItemResult]:
        """One task message, and its results (what the coalescer sends)."""
        try:
            sent = self.app.send_task(
                task_name(task.tool),
                args=[task.model_dump(mode="json")],
                queue=queue_name(TOOL_QUEUES[task.tool]),
                retry=False,
                # Nobody waits for it after that: a worker that takes it later drops it.
                expires=timeout_s,
            )
        except (OperationalError, KombuError, redis.RedisError, OSError) as error:
            raise self._broker_down(error) from error
        try:
            # propagate=False: a task's own exception (an OSError it kept hitting) must not
            # read as the broker's.
            results: Any = sent.get(timeout=timeout_s, interval=0.05, propagate=False)
        except CeleryTimeout:
            raise Unavailable(f"{task.tool} gave no result within {timeout_s:.0f} s") from None
        except (OperationalError, KombuError, redis.RedisError, OSError) as error:
            raise self._broker_down(error) from error
        if isinstance(results, BaseException):  # the task failed after its retries
            log.warning("%s task %s failed: %r", task.tool, sent.id, results)
            raise Unavailable(f"the {task.tool} worker failed: {type(results).__name__}")
        if not isinstance(results, list) or len(results) != len(task.items):
            raise Unavailable(f"the {task.tool} worker sent a malformed result")
        return results

    def readiness(self, tool: ToolName) -> str:
        try:
            self._require_worker(tool)
        except Unavailable as error:
            return error.detail
        return "ok"

    def _require_worker(self, tool: ToolName) -> None:
        queue = TOOL_QUEUES[tool]
        try:
            workers = live_workers(self._redis, queue)
        except redis.RedisError as error:
            raise self._broker_down(error) from error
        if not workers:
            raise BackendDown(
                f"no {queue} worker is running for {tool}: start one with "
                f"`mmrag worker --queues {queue}`"
            )

    def _broker_down(self, error: BaseException) -> BackendDown:
        log.warning("task broker unreachable: %s", error)
        return BackendDown(f"the task broker is unreachable ({type(error).__name__}); retry soon")

    def close(self) -> None:
        self.coalescer.close()
        self._redis.close()
        self.app.close()


def open_runner(settings: Settings, blobs: BlobStore) -> TaskRunner:
    """The runner the settings ask for."""
    if settings.workers.mode == "celery":
        return CeleryRunner(settings)
    return InProcessRunner.from_settings(settings, ToolExecutor(settings, blobs))
