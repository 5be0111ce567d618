"""Tiny grounding checkpoints and their adapters, each built and loaded once per test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from models.grounding.box_checks import TINY
from models.grounding.tiny_detectors import build_tiny_detector

from mmrag.models.registry import create_vision_model
from mmrag.models.vision import VisionModel


@pytest.fixture(scope="session")
def tiny_detector_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The directory of a tiny checkpoint by name (see ``tiny_detectors.BUILDERS``)."""
    built: dict[str, Path] = {}

    def directory(name: str) -> Path:
        if name not in built:
            built[name] = build_tiny_detector(name, tmp_path_factory.mktemp(name))
        return built[name]

    return directory


@pytest.fixture(scope="session")
def tiny_detector(tiny_detector_dir: Callable[[str], Path]) -> Callable[[str], VisionModel]:
    """A tiny checkpoint's adapter, created through the registry and loaded on CPU."""
    adapters: dict[str, VisionModel] = {}

    def adapter(name: str) -> VisionModel:
        if name not in adapters:
            model = create_vision_model(f"local:{tiny_detector_dir(name)}", TINY)
            model.load()
            adapters[name] = model
        return adapters[name]

    return adapter
