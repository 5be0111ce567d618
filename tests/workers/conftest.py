"""Fixtures for the worker tests: real Redis, real ``mmrag worker`` processes, fixture models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from workers.celery_worker import CeleryWorker, settings_env
from workers.redis_server import RedisServer

from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir

SHAPES_VLM = "fixture:shapes-vlm"
SHAPES_GROUNDING = "fixture:shapes-grounding"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def with_models(settings: Settings, **workers: object) -> Settings:
    """``settings`` with the fixture VLM and grounding models and the given worker settings."""
    data: dict[str, Any] = settings.model_dump()
    data["models"].update(vlm=SHAPES_VLM, grounding=SHAPES_GROUNDING, cache_dir=default_cache_dir())
    data["workers"].update(workers)
    return Settings.model_validate(data)


@pytest.fixture
def shapes_settings(settings: Settings) -> Settings:
    """Embedded mode with the fixture models (trained once per machine into the cache)."""
    return with_models(settings)


@pytest.fixture
def celery_settings(settings: Settings, redis_server: RedisServer) -> Settings:
    """Distributed mode against the test's Redis, with short timeouts for fault tests."""
    return with_models(
        settings,
        mode="celery",
        broker_url=redis_server.url,
        task_time_limit_s=20,
        visibility_timeout_s=25,
        result_wait_s=90,
        heartbeat_s=0.5,
    )


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes ``mmrag worker`` run on ``settings``."""
    workers = settings.workers
    models = settings.models
    return settings_env(
        {
            "MMRAG_DATA_DIR": str(settings.data_dir),
            "MMRAG_MODELS__VLM": models.vlm,
            "MMRAG_MODELS__GROUNDING": models.grounding,
            "MMRAG_MODELS__EMBEDDER": models.embedder,
            "MMRAG_MODELS__DEVICE": "cpu",
            "MMRAG_MODELS__CPU_THREADS": "1",
            "MMRAG_MODELS__CACHE_DIR": str(models.cache_dir or default_cache_dir()),
            "MMRAG_WORKERS__MODE": "celery",
            "MMRAG_WORKERS__BROKER_URL": workers.broker_url,
            "MMRAG_WORKERS__TASK_TIME_LIMIT_S": str(workers.task_time_limit_s),
            "MMRAG_WORKERS__VISIBILITY_TIMEOUT_S": str(workers.visibility_timeout_s),
            "MMRAG_WORKERS__HEARTBEAT_S": str(workers.heartbeat_s),
            "MMRAG_WORKERS__BATCH_WINDOW_MS": str(workers.batch_window_ms),
        }
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
