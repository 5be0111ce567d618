"""Settings for the tests that run the vision models: model specs, worker environment."""

from __future__ import annotations

from typing import Any

from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir
from mmrag.testing.celery_worker import settings_env


def with_models(settings: Settings, vlm: str, grounding: str, **workers: object) -> Settings:
    """``settings`` with the given VLM, grounding model and worker settings."""
    data: dict[str, Any] = settings.model_dump()
    data["models"].update(vlm=vlm, grounding=grounding, cache_dir=default_cache_dir())
    data["workers"].update(workers)
    return Settings.model_validate(data)


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
            "MMRAG_WORKERS__RETRY_BACKOFF_MAX_S": str(workers.retry_backoff_max_s),
            "MMRAG_WORKERS__HEARTBEAT_S": str(workers.heartbeat_s),
            "MMRAG_WORKERS__BATCH_WINDOW_MS": str(workers.batch_window_ms),
        }
    )
