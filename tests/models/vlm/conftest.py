"""Tiny VLM checkpoints and their adapters, each built and loaded once per test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from models.vlm.tiny_vlms import build_tiny_vlm

from mmrag.models.registry import create_vision_model
from mmrag.models.vision import VisionOptions
from mmrag.models.vlm.generative import GenerativeVlm

MAX_NEW_TOKENS = 4
CPU = VisionOptions(device="cpu", max_new_tokens=MAX_NEW_TOKENS, cpu_threads=1)


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The directory of a tiny checkpoint by name (see ``tiny_vlms.BUILDERS``)."""
    built: dict[str, Path] = {}

    def directory(name: str) -> Path:
        if name not in built:
            built[name] = build_tiny_vlm(name, tmp_path_factory.mktemp(name))
        return built[name]

    return directory


@pytest.fixture(scope="session")
def tiny_vlm(tiny_vlm_dir: Callable[[str], Path]) -> Callable[[str], GenerativeVlm]:
    """A tiny checkpoint's adapter, created through the registry and loaded on CPU."""
    adapters: dict[str, GenerativeVlm] = {}

    def adapter(name: str) -> GenerativeVlm:
        if name not in adapters:
            model = create_vision_model(f"local:{tiny_vlm_dir(name)}", CPU)
            assert isinstance(model, GenerativeVlm)
            model.load()
            adapters[name] = model
        return adapters[name]

    return adapter
