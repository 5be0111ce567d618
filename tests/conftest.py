"""Shared fixtures. Models are tiny or trained on the synthetic world; nothing downloads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmrag.config import Settings
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions
from mmrag.models.clip.tiny import write_open_clip_dir
from mmrag.models.registry import create_embedder


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight open_clip model directory (32-d, 32 px): structure, not answers."""
    return write_open_clip_dir(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_clip_dir: Path) -> ClipEmbedder:
    embedder = create_embedder(
        f"local:{tiny_clip_dir}", EmbedderOptions(device="cpu", batch_size=8)
    )
    embedder.load()
    return embedder


@pytest.fixture(scope="session")
def tiny_vlm_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-weight LLaVA checkpoint (captions and answers are noise): structure only."""
    from models.vlm.tiny_vlms import build_tiny_vlm

    return f"local:{build_tiny_vlm('llava-plain', tmp_path_factory.mktemp('tiny-vlm'))}"


@pytest.fixture(scope="session")
def tiny_grounding_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-weight OWLv2 checkpoint (boxes are noise within the image): structure only."""
    from models.grounding.tiny_detectors import build_tiny_detector

    return f"local:{build_tiny_detector('owlv2', tmp_path_factory.mktemp('tiny-owl'))}"


@pytest.fixture
def settings(tmp_path: Path, tiny_clip_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a fresh data dir with the tiny embedder and no sample gallery."""
    for name in list(os.environ):
        if name.startswith("MMRAG_") and name != "MMRAG_FIXTURE_CACHE":
            monkeypatch.delenv(name)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    return Settings(
        data_dir=tmp_path / "data",
        allowed_roots=[allowed],
        # torch: no export or parity probe per test; tests/models/test_backends.py and
        # tests/api/test_search_backends.py cover the other backends and auto.
        models={
            "embedder": f"local:{tiny_clip_dir}",
            "device": "cpu",
            "batch_size": 8,
            "backend": "torch",
        },
        samples={"enabled": False},
    )
