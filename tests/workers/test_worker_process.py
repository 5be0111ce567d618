"""The ``mmrag worker`` process: starts, announces itself, answers, stops cleanly."""

from __future__ import annotations

from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.config import Settings
from mmrag.testing.celery_worker import CeleryWorker
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.celery_app import PING_TASK
from mmrag.workers.heartbeat import live_workers
from mmrag.workers.runner import CeleryRunner


def test_worker_answers_a_ping_and_beats_for_its_queues(
    celery_settings: Settings, celery_worker: CeleryWorker, redis_server: RedisServer
) -> None:
    runner = CeleryRunner(celery_settings)
    try:
        sent = runner.app.send_task(PING_TASK, queue="mmrag.vlm")
        assert sent.get(timeout=30) == "pong"
        client = redis_server.client()
        assert live_workers(client, "vlm") == ["test-worker"]
        assert live_workers(client, "grounding") == ["test-worker"]
        assert runner.readiness("caption") == "ok"
    finally:
        runner.close()


def test_a_stopped_worker_removes_its_heartbeat(
    celery_settings: Settings, celery_worker: CeleryWorker, redis_server: RedisServer
) -> None:
    celery_worker.stop()
    assert celery_worker.process is not None
    assert celery_worker.process.returncode == 0
    assert live_workers(redis_server.client(), "vlm") == []


def test_worker_refuses_unknown_queues() -> None:
    result = CliRunner().invoke(app, ["worker", "--queues", "vlm,gpu"])
    assert result.exit_code == 1
    assert "unknown queue gpu" in result.output
