"""Every point records the embedder that made it; a service started with another embedder
refuses the collection with a line that says what to do, instead of answering wrongly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from mmrag.config import Settings
from mmrag.errors import DimensionMismatchError
from mmrag.models.clip.tiny import TINY_CLIP_CONFIG, write_open_clip_dir
from mmrag.retrieval.items import IngestItem
from mmrag.services import Services


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 20, 20)).save(buffer, format="PNG")
    return buffer.getvalue()


def _with_embedder(settings: Settings, directory: Path) -> Settings:
    models = settings.models.model_copy(update={"embedder": f"local:{directory}"})
    return settings.model_copy(update={"models": models})


def _index_one(settings: Settings) -> str:
    services = Services.open(settings)
    try:
        report = services.ingest([IngestItem.upload(_png(), "red.png", (), {})])
        [result] = report.results
        assert result.image is not None
        image_id = result.image.image_id
        payload = services.store.get([image_id])[image_id]
        assert payload["embedder_spec"] == settings.embedder_spec
        assert payload["embedder_dim"] == 32
        return image_id
    finally:
        services.close()


def test_another_embedder_of_the_same_dimension_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    _index_one(settings)
    other = _with_embedder(settings, write_open_clip_dir(tmp_path / "other-clip", seed=1))
    services = Services.open(other)
    try:
        with pytest.raises(DimensionMismatchError) as refused:
            services.embedder()
        assert f"embedded by {settings.embedder_spec} (32-d)" in refused.value.detail
        assert f"not the configured {other.embedder_spec} (32-d)" in refused.value.detail
        assert f"MMRAG_MODELS__EMBEDDER={settings.embedder_spec}" in refused.value.detail
    finally:
        services.close()
    # Nothing was lost: the original embedder serves the collection as before.
    services = Services.open(settings)
    try:
        services.embedder()
        assert services.store.count() == 1
    finally:
        services.close()


def test_another_dimension_is_refused(settings: Settings, tmp_path: Path) -> None:
    _index_one(settings)
    narrower = {**TINY_CLIP_CONFIG, "embed_dim": 16}
    other = _with_embedder(settings, write_open_clip_dir(tmp_path / "narrow-clip", narrower))
    services = Services.open(other)
    try:
        with pytest.raises(DimensionMismatchError) as refused:
            services.embedder()
        assert f"not the configured {other.embedder_spec} (16-d)" in refused.value.detail
        assert f"`mmrag reindex --embedder {other.embedder_spec}`" in refused.value.detail
    finally:
        services.close()
