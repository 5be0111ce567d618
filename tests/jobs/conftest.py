"""Fixtures for the job tests: the worker tests' Redis, worker and model settings, reused."""

from __future__ import annotations

from pathlib import Path

from workers.conftest import (  # noqa: F401 (fixtures)
    celery_settings,
    celery_worker,
    model_settings,
    redis_server,
)
from workers.shapes_scenes import held_out, png_of


def write_scenes(directory: Path, count: int, start: int = 0) -> list[Path]:
    """``count`` distinct shapes scenes as PNG files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, scene in enumerate(held_out(start + count)[start:], start=start):
        path = directory / f"scene-{index:04d}.png"
        path.write_bytes(png_of(scene))
        written.append(path)
    return written
