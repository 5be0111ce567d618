"""Fixtures for the worker tests: real Redis, real ``mmrag worker`` processes, fixture models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from workers.worker_settings import with_models, worker_environment

from mmrag.config import Settings
from mmrag.testing.celery_worker import CeleryWorker
from mmrag.testing.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def model_settings(settings: Settings, tiny_vlm_spec: str, tiny_grounding_spec: str) -> Settings:
    """Embedded mode with the tiny random-weight VLM and grounding models."""
    return with_models(settings, tiny_vlm_spec, tiny_grounding_spec)


@pytest.fixture
def celery_settings(
    settings: Settings, redis_server: RedisServer, tiny_vlm_spec: str, tiny_grounding_spec: str
) -> Settings:
    """Distributed mode against the test's Redis, with short timeouts for fault tests."""
    return with_models(
        settings,
        tiny_vlm_spec,
        tiny_grounding_spec,
        mode="celery",
        broker_url=redis_server.url,
        task_time_limit_s=20,
        visibility_timeout_s=25,
        retry_backoff_max_s=4,
        result_wait_s=90,
        heartbeat_s=0.5,
    )


@pytest.fixture
def celery_worker(celery_settings: Settings, tmp_path: Path) -> Iterator[CeleryWorker]:
    worker = CeleryWorker(
        worker_environment(celery_settings),
        celery_settings.workers.broker_url,
        tmp_path / "worker.log",
    )
    with worker:
        yield worker
