"""``mmrag worker``: one Celery worker process, typically one per GPU.

Tasks run on a pool of threads in this one process, so the models load once and the
micro-batcher sees every request in flight; run one process per GPU
(``CUDA_VISIBLE_DEVICES=1 mmrag worker``) to use several.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import redis
from celery import signals

from mmrag.config import Settings
from mmrag.workers.celery_app import WorkerState, create_celery_app, queue_name, register_tasks
from mmrag.workers.heartbeat import Heartbeat
from mmrag.workers.protocol import QueueName

log = logging.getLogger(__name__)


def default_hostname() -> str:
    return f"mmrag@{socket.gethostname()}"


def run_worker(
    settings: Settings,
    queues: list[QueueName],
    concurrency: int | None = None,
    hostname: str | None = None,
    preload: bool = False,
) -> int:
    """Consume ``queues`` until stopped (SIGTERM: finish running tasks first). Exit code."""
    app = create_celery_app(settings)
    state = WorkerState.open(settings)
    register_tasks(app, state)
    name = hostname or default_hostname()
    heartbeat = Heartbeat(
        # A read timeout too: on a half-open connection a beat would otherwise block for
        # good, the keys expire, and the API reports no worker while this one runs.
        redis.Redis.from_url(
            settings.workers.broker_url, socket_connect_timeout=2, socket_timeout=5
        ),
        queues,
        name,
        settings.workers.heartbeat_s,
    )

    def on_ready(**_: Any) -> None:
        if preload:
            try:
                _preload(settings, state, queues)
            except Exception:
                # Celery logs and drops what a signal handler raises: the heartbeat below
                # would never start, and the API would report no worker while this one
                # runs. Announce it anyway; each task then reports why its model won't load.
                log.exception("preloading failed; models load on first use instead")
        state.executor.start_sweeper()
        heartbeat.start()
        log.info("worker %s ready on %s", name, ", ".join(queues))

    def on_shutdown(**_: Any) -> None:
        heartbeat.stop()
        state.close()

    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    worker = app.Worker(
        hostname=name,
        queues=[queue_name(queue) for queue in queues],
        pool="threads",
        concurrency=concurrency or settings.workers.concurrency,
        loglevel=settings.log_level,
        without_gossip=True,
        without_mingle=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


def _preload(settings: Settings, state: WorkerState, queues: list[QueueName]) -> None:
    """Load the queues' default models now, so the first task does not wait for them."""
    for queue in queues:
        spec = settings.model_spec(queue)  # each queue is named for the model role it serves
        state.executor.preload(spec)
        log.info("preloaded %s", spec)
