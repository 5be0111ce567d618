from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mmrag.config import PROFILE_MODELS, ApiKey, Profile, Settings, StoreBackend


def test_env_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MMRAG_STORE__BACKEND", "qdrant")
    monkeypatch.setenv("MMRAG_STORE__HNSW__MIN_POINTS", "123")
    monkeypatch.setenv("MMRAG_ALLOWED_ROOTS", f'["{tmp_path}/a/../b"]')
    monkeypatch.setenv("MMRAG_PROFILE", "offline")

    settings = Settings()

    assert settings.data_dir == tmp_path
    assert settings.store.backend == StoreBackend.QDRANT
    assert settings.store.hnsw.min_points == 123
    assert settings.allowed_roots == [tmp_path / "b"]
    assert settings.embedder_spec == PROFILE_MODELS[Profile.OFFLINE]["embedder"]


def test_explicit_spec_beats_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_MODELS__EMBEDDER", "local:/models/clip")
    assert Settings().embedder_spec == "local:/models/clip"


def test_standard_profile_defaults_to_real_vit_b_32() -> None:
    assert Settings().embedder_spec == "open_clip:ViT-B-32@laion2b_s34b_b79k"


def test_production_refuses_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="MMRAG_SECRET_KEY"):
        Settings()


def test_production_refuses_running_without_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_ENVIRONMENT", "production")
    monkeypatch.setenv("MMRAG_SECRET_KEY", "a-real-secret")
    with pytest.raises(ValidationError, match="API_KEYS"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MMRAG_LIMITS__SEARCH_MAX_LIMIT", "0"),
        ("MMRAG_STORE__COLLECTION", "../escape"),
        ("MMRAG_PROFILE", "turbo"),
        ("MMRAG_LOG_LEVEL", "verbose"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("visibility", ["600", "650"])
def test_visibility_timeout_must_outlast_a_task_and_its_retry_wait(
    monkeypatch: pytest.MonkeyPatch, visibility: str
) -> None:
    # A 600 s task plus a 60 s retry wait: Redis must not hand it out again before 660 s.
    monkeypatch.setenv("MMRAG_WORKERS__VISIBILITY_TIMEOUT_S", visibility)
    with pytest.raises(ValidationError, match="retry_backoff_max_s"):
        Settings()
    monkeypatch.setenv("MMRAG_WORKERS__VISIBILITY_TIMEOUT_S", "661")
    assert Settings().workers.visibility_timeout_s == 661


@pytest.mark.parametrize(
    ("variable", "spec", "reason"),
    [
        ("MMRAG_MODELS__EMBEDDER", "fixture:shapes-clipp", "unknown fixture model 'shapes-clipp'"),
        ("MMRAG_MODELS__VLM", "fixture:nope", "unknown fixture model 'nope'"),
        ("MMRAG_MODELS__GROUNDING", "bogus", "malformed model spec"),
        ("MMRAG_MODELS__EMBEDDER", "hf:org/model", "this model loads from open_clip:, local:"),
        ("MMRAG_MODELS__VLM", "open_clip:ViT-B-32@x", "this model loads from hf:, local:"),
        ("MMRAG_MODELS__ALLOWED", '["fixture:unknown"]', "unknown fixture model"),
    ],
)
def test_a_model_spec_that_names_no_model_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, spec: str, reason: str
) -> None:
    monkeypatch.setenv(variable, spec)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_known_specs_are_kept_in_canonical_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_MODELS__VLM", " fixture:shapes-vlm ")
    monkeypatch.setenv("MMRAG_MODELS__GROUNDING", "hf:google/owlv2-base-patch16-ensemble@main")
    settings = Settings()
    assert settings.model_spec("vlm") == "fixture:shapes-vlm"
    assert settings.model_spec("grounding") == "hf:google/owlv2-base-patch16-ensemble@main"


def test_an_api_key_cannot_be_named_like_a_slack_workspace() -> None:
    # A key named "slack:T1" would own, and so read, that workspace's agent conversations.
    with pytest.raises(ValidationError, match="name"):
        ApiKey(name="slack:T1", sha256="0" * 64)
    assert ApiKey(name="ci-bot_2.prod@team", sha256="0" * 64).name == "ci-bot_2.prod@team"


@pytest.mark.parametrize("name", ["acme/bob", "anonymous"])
def test_an_api_key_cannot_be_named_like_another_conversation_owner(name: str) -> None:
    # "acme/bob" would own tenant acme's key bob's threads; "anonymous" owns none at all.
    with pytest.raises(ValidationError, match="name"):
        ApiKey(name=name, sha256="0" * 64)


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (
            {
                "MMRAG_MODELS__ENGINE__MIN_IMAGE_PIXELS": "500000",
                "MMRAG_MODELS__ENGINE__MAX_IMAGE_PIXELS": "4000",
            },
            "min_image_pixels must not exceed",
        ),
        (
            {"MMRAG_MODELS__ENGINE__BACKOFF_S": "10", "MMRAG_MODELS__ENGINE__BACKOFF_MAX_S": "1"},
            "backoff_s must not exceed",
        ),
        (
            {"MMRAG_AGENT__RETRIEVE_LIMIT": "10", "MMRAG_AGENT__RANK_RETRIEVE_LIMIT": "5"},
            "rank_retrieve_limit must be at least",
        ),
    ],
)
def test_crossed_bounds_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], reason: str
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_json_bodies_are_bounded_by_the_request_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_LIMITS__MAX_REQUEST_BYTES", "65536")
    monkeypatch.setenv("MMRAG_LIMITS__MAX_JSON_BYTES", "65537")
    with pytest.raises(ValidationError, match="max_json_bytes"):
        Settings()
    monkeypatch.setenv("MMRAG_LIMITS__MAX_JSON_BYTES", "65536")
    assert Settings().limits.max_json_bytes == 65536


def test_int8_quantization_is_refused_with_the_qdrant_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MMRAG_STORE__QUANTIZATION", "int8")
    assert Settings().store.quantization == "int8"  # the edge store's
    monkeypatch.setenv("MMRAG_STORE__BACKEND", StoreBackend.QDRANT.value)
    monkeypatch.setenv("MMRAG_STORE__URL", ":memory:")
    with pytest.raises(ValidationError, match="quantization"):
        Settings()


def test_on_disk_vectors_are_refused_with_the_qdrant_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MMRAG_STORE__ON_DISK_VECTORS", "true")
    assert Settings().store.on_disk_vectors is True  # the edge store's
    monkeypatch.setenv("MMRAG_STORE__BACKEND", StoreBackend.QDRANT.value)
    monkeypatch.setenv("MMRAG_STORE__URL", ":memory:")
    with pytest.raises(ValidationError, match="on_disk_vectors"):
        Settings()


def test_int8_copies_out_of_ram_need_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_STORE__QUANTIZED_IN_RAM", "false")
    monkeypatch.setenv("MMRAG_STORE__QUANTIZATION", "none")
    with pytest.raises(ValidationError, match="quantized_in_ram"):
        Settings()
    monkeypatch.setenv("MMRAG_STORE__QUANTIZATION", "int8")
    assert Settings().store.quantized_in_ram is False
    monkeypatch.setenv("MMRAG_STORE__QUANTIZATION", "none")
    monkeypatch.setenv("MMRAG_STORE__BACKEND", StoreBackend.QDRANT.value)
    monkeypatch.setenv("MMRAG_STORE__URL", ":memory:")
    with pytest.raises(ValidationError, match="edge store's; set it to true"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EF_CONSTRUCT", "8", "ef_construct"),  # below the default m (16)
        ("M", "2", "m"),
        ("PAYLOAD_M", "-1", "payload_m"),
        ("EF_SEARCH", "0", "ef_search"),
        ("ACORN_EF_SEARCH", "100000", "acorn_ef_search"),
    ],
)
def test_absurd_hnsw_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"MMRAG_STORE__HNSW__{name}", value)
    with pytest.raises(ValidationError, match=message):
        Settings()
