"""The service container: model-failure back-off and serialised ingest."""

from __future__ import annotations

import pytest

from mmrag import services as services_module
from mmrag.config import Settings
from mmrag.errors import ModelUnavailable
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
