"""The agent over a real store of shapes scenes with the trained fixture models: shapes-clip
for retrieval, shapes-grounding for boxes, shapes-vlm for captions and answers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from workers.shapes_scenes import held_out, index_scenes

from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir
from mmrag.models.fixtures.shapes import ShapeScene
from mmrag.services import Services

SCENES = 16


def world_settings(data_dir: Path, vlm: str, **agent: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        models={
            "embedder": "fixture:shapes-clip",
            "grounding": "fixture:shapes-grounding",
            "vlm": vlm,
            "device": "cpu",
            "cache_dir": default_cache_dir(),
        },
        samples={"enabled": False},
        agent=agent,
    )


def clear_mmrag_env(patch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, not from the shell's MMRAG_ variables."""
    for name in list(os.environ):
        if name.startswith("MMRAG_") and name != "MMRAG_FIXTURE_CACHE":
            patch.delenv(name)


@dataclass
class World:
    services: Services
    scenes: dict[str, ShapeScene]  # image id -> its scene (the ground truth)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        clear_mmrag_env(patch)
        data_dir = tmp_path_factory.mktemp("agent-world") / "data"
        services = Services.open(world_settings(data_dir, "fixture:shapes-vlm"))
        try:
            scenes = held_out(SCENES)
            ids = index_scenes(services, scenes)
            yield World(services, dict(zip(ids, scenes, strict=True)))
        finally:
            services.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_mmrag_env(monkeypatch)
