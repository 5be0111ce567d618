"""The Celery app of the distributed mode: configuration, queues, and the tool tasks.

The app is built from settings when needed (``create_celery_app``), never at import time.
The API only sends tasks by name; the worker process registers them (``register_tasks``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery, Task
from pydantic import ValidationError

from mmrag.config import Settings
from mmrag.errors import InvalidInput
from mmrag.retrieval.blobs import FilesystemBlobStore
from mmrag.workers.executor import ToolExecutor
from mmrag.workers.failures import is_transient
from mmrag.workers.protocol import (
    TOOL_NAMES,
    TOOL_QUEUES,
    ItemResult,
    QueueName,
    ToolName,
    ToolTask,
    error_result,
)
from mmrag.workers.results import ResultLedger

log = logging.getLogger(__name__)

RESULT_EXPIRES_S = 24 * 3600
PING_TASK = "mmrag.ping"
STATS_TASK = "mmrag.stats"


def task_name(tool: ToolName) -> str:
    return f"mmrag.{tool}"


def queue_name(queue: QueueName) -> str:
    return f"mmrag.{queue}"


def create_celery_app(settings: Settings) -> Celery:
    workers = settings.workers
    app = Celery("mmrag", broker=workers.broker_url, backend=workers.backend_url)
    transport = {
        # A task not acknowledged within this long goes back to the queue for another
        # worker: the recovery path after a worker dies mid-task (acks_late).
        "visibility_timeout": int(workers.visibility_timeout_s),
        # Sweep for such tasks often enough to matter at short timeouts; scan every sweep.
        "unacked_restore_interval": max(1, min(60, int(workers.visibility_timeout_s / 4))),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 2,
    }
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        # Celery's threads pool (what `mmrag worker` runs) enforces neither limit: they
        # hold for other pools only. Under threads the bound is the executor's own deadline
        # (run_tool), which stops waiting; a forward pass past it runs on regardless.
        task_time_limit=workers.task_time_limit_s,
        task_soft_time_limit=workers.task_time_limit_s * 0.9,
        task_routes={
            task_name(tool): {"queue": queue_name(TOOL_QUEUES[tool])} for tool in TOOL_NAMES
        },
        task_default_queue=queue_name("vlm"),
        # The worker takes only what its threads can start: the rest stays in Redis for
        # other workers (and survives this one dying).
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        # The Redis result backend reads its socket options from these settings, not from
        # result_backend_transport_options; its connect timeout is otherwise unbounded.
        redis_socket_connect_timeout=2,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        result_expires=RESULT_EXPIRES_S,
        worker_hijack_root_logger=False,
        # Our handlers write to stderr themselves; redirected, they would write into a loop.
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
    )
    return app


@dataclass
class WorkerState:
    """What the tasks of one worker process share: models, batchers, the result ledger."""

    settings: Settings
    executor: ToolExecutor
    ledger: ResultLedger

    @classmethod
    def open(cls, settings: Settings) -> WorkerState:
        # A read timeout too, so a half-open connection fails the task (which then retries)
        # instead of holding its thread for good.
        client = redis.Redis.from_url(
            settings.workers.broker_url, socket_connect_timeout=2, socket_timeout=5
        )
        executor = ToolExecutor(settings, FilesystemBlobStore.from_settings(settings))
        return cls(settings, executor, ResultLedger(client))

    def close(self) -> None:
        self.executor.close()


def register_tasks(app: Celery, state: WorkerState) -> None:
    workers = state.settings.workers

    def run_once(task_id: str, tool: ToolName, body: Any) -> list[ItemResult]:
        done = state.ledger.find(task_id)
        if done is not None:
            log.info("task %s was already done by an earlier delivery", task_id)
            return done
        try:
            request = ToolTask.model_validate(body)
        except ValidationError as error:
            # A malformed message is final: retrying cannot fix it, and failing it keeps the
            # queue moving. (The API validates first; this guards other producers.)
            return [error_result(InvalidInput(f"malformed {tool} task: {error}"))]
        if request.tool != tool:
            return [error_result(InvalidInput(f"a {request.tool} task sent to {tool}"))]
        results = state.executor.run(request, timeout_s=workers.task_time_limit_s * 0.9)
        return state.ledger.store_once(task_id, results)

    def run_tool(task: Task[Any, Any], tool: ToolName, body: Any) -> list[ItemResult]:
        task_id = str(task.request.id)
        # The ledger's Redis calls are inside too: a blip there is as transient as one in
        # the forward pass, and must not fail the task (or lose its results) for good.
        try:
            return run_once(task_id, tool, body)
        except Exception as error:
            if is_transient(error) and task.request.retries < workers.max_retries:
                countdown = min(2.0**task.request.retries, workers.retry_backoff_max_s)
                log.warning("task %s failed (%s); retry in %.0f s", task_id, error, countdown)
                # Celery's own limit (3 by default) would otherwise cut a higher setting short.
                raise task.retry(
                    exc=error, countdown=countdown, max_retries=workers.max_retries
                ) from error
            log.exception("task %s failed", task_id)
            raise

    for tool in TOOL_NAMES:
        _register(app, tool, run_tool)

    @app.task(name=PING_TASK)  # type: ignore[untyped-decorator]
    def ping() -> str:
        """An empty task: the queue's own round-trip cost, for benchmarks and smoke tests."""
        return "pong"

    @app.task(name=STATS_TASK)  # type: ignore[untyped-decorator]
    def stats() -> dict[str, int]:
        """What this worker process ran, for benchmarks: the forward passes so far."""
        return {"forward_passes": state.executor.batchers.batches_run()}


def _register(app: Celery, tool: ToolName, run_tool: Any) -> None:
    @app.task(name=task_name(tool), bind=True)  # type: ignore[untyped-decorator]
    def tool_task(self: Task[Any, Any], body: Any) -> list[ItemResult]:
        return run_tool(self, tool, body)  # type: ignore[no-any-return]
