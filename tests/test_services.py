"""The service container: model-failure back-off and serialised ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag import services as services_module
from mmrag.config import Settings
from mmrag.errors import ModelUnavailable
from mmrag.models import fixtures
from mmrag.models.clip.embedder import ClipEmbedder
from mmrag.models.registry import create_embedder
from mmrag.services import Services


def test_a_model_that_failed_to_load_is_not_retried_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = settings.model_copy(
        update={"models": settings.models.model_copy(update={"embedder": "local:/nonexistent"})}
    )
    attempts: list[str] = []
    real_create = create_embedder

    def counting_create(spec: str, *args: object, **kwargs: object) -> ClipEmbedder:
        attempts.append(spec)
        return real_create(spec, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services_module, "create_embedder", counting_create)
    services = Services.open(broken)
    try:
        for _ in range(3):
            with pytest.raises(ModelUnavailable, match="nonexistent"):
                services.embedder()
        assert len(attempts) == 1

        monkeypatch.setattr(services_module, "MODEL_RETRY_AFTER_S", 0.0)
        with pytest.raises(ModelUnavailable):
            services.embedder()
        assert len(attempts) == 2
    finally:
        services.close()


def test_the_model_cache_dir_setting_reaches_the_fixture_cache(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Path | None] = []

    def fake_fixture_directory(name: str, cache_dir: Path | None = None) -> Path:
        built.append(cache_dir)
        raise ModelUnavailable("not built in this test")

    monkeypatch.setattr(fixtures, "fixture_directory", fake_fixture_directory)
    chosen = settings.model_copy(
        update={
            "models": settings.models.model_copy(
                update={"embedder": "fixture:shapes-clip", "cache_dir": tmp_path / "models"}
            )
        }
    )
    services = Services.open(chosen)
    try:
        with pytest.raises(ModelUnavailable):
            services.embedder()
    finally:
        services.close()
    assert built == [tmp_path / "models"]
