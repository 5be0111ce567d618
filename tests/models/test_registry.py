"""Spec -> embedder, and how open_clip weights are found (cache first, hub only if it answers)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mmrag.config import PROFILE_MODELS, Profile
from mmrag.errors import ModelUnavailable, UnknownModel
from mmrag.models.clip import weights
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions
from mmrag.models.clip.tiny import TINY_CLIP_CONFIG, write_open_clip_dir
from mmrag.models.registry import create_embedder
from mmrag.models.torch_setup import ensure_torchvision

CPU = EmbedderOptions(device="cpu")
DEFAULT_SPEC = PROFILE_MODELS[Profile.STANDARD]["embedder"]
TINY_ARCH = "mmrag-tiny-test"
TINY_REPO = "mmrag-test/tiny-clip"


# -- specs the registry refuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "hf:Qwen/Qwen2.5-VL-3B-Instruct",  # a known scheme, but not an embedder
        "timm:vit_base_patch32",  # unknown scheme
        "ViT-B-32",  # malformed
        "open_clip:ViT-B-32",  # no pretrained tag: would be random weights
        "open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",  # not a built-in name
        "open_clip:local-dir:/tmp/x",
    ],
)
def test_unknown_specs_raise_unknown_model(spec: str) -> None:
    with pytest.raises(UnknownModel):
        create_embedder(spec, CPU)


def test_construction_is_cheap_and_loads_nothing() -> None:
    embedder = create_embedder(DEFAULT_SPEC, CPU)
    assert isinstance(embedder, ClipEmbedder)
    assert not embedder.loaded


def test_local_dir_without_config_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable, match=r"open_clip_config\.json"):
        create_embedder(f"local:{tmp_path}", CPU)


def test_missing_local_dir_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        create_embedder(f"local:{tmp_path / 'nowhere'}", CPU)


def test_local_dir_with_broken_weights_is_unavailable(tmp_path: Path, tiny_clip_dir: Path) -> None:
    shutil.copy(tiny_clip_dir / "open_clip_config.json", tmp_path)
    (tmp_path / "open_clip_model.safetensors").write_bytes(b"garbage")
    embedder = create_embedder(f"local:{tmp_path}", CPU)
    with pytest.raises(ModelUnavailable, match="cannot load"):
        embedder.load()


def test_local_tiny_model_loads(tiny_clip_dir: Path) -> None:
    embedder = create_embedder(f"local:{tiny_clip_dir}", CPU)
    embedder.load()
    assert embedder.loaded
    assert embedder.dim == TINY_CLIP_CONFIG["embed_dim"]
    assert embedder.input_size == (32, 32)


def test_unknown_architecture_and_tag_are_unknown_models(tmp_path: Path) -> None:
    options = EmbedderOptions(device="cpu", cache_dir=tmp_path)
    with pytest.raises(UnknownModel, match="no architecture"):
        create_embedder("open_clip:ViT-Q-99@laion2b_s34b_b79k", options).load()
    with pytest.raises(UnknownModel, match="laion2b_s34b_b79k"):  # the error lists known tags
        create_embedder("open_clip:ViT-B-32@no_such_tag", options).load()


# -- the default spec without a hub -----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point huggingface_hub at a closed local port: no hub, whatever this machine has."""
    from huggingface_hub import constants

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return endpoint


def test_default_spec_without_hub_fails_fast_and_names_the_offline_profile(
    unreachable_hub: str, tmp_path: Path
) -> None:
    ensure_torchvision()
    import open_clip  # noqa: F401  (imported first: only the load itself is timed)

    embedder = create_embedder(DEFAULT_SPEC, EmbedderOptions(device="cpu", cache_dir=tmp_path))
    start = time.perf_counter()
    with pytest.raises(ModelUnavailable) as caught:
        embedder.load()
    elapsed = time.perf_counter() - start
    message = str(caught.value)
    assert "MMRAG_PROFILE=offline" in message
    assert DEFAULT_SPEC in message
    assert unreachable_hub in message
    assert elapsed < 5.0, f"took {elapsed:.1f} s: retried instead of failing fast"
    assert not embedder.loaded


def test_hf_hub_offline_fails_without_touching_the_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("probed the network although HF_HUB_OFFLINE is set")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(httpx, "head", no_network)
    embedder = create_embedder(DEFAULT_SPEC, EmbedderOptions(device="cpu", cache_dir=tmp_path))
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE") as caught:
        embedder.load()
    assert "MMRAG_PROFILE=offline" in str(caught.value)


# -- cached weights load with no network ------------------------------------------------------


@pytest.fixture
def tiny_tag(monkeypatch: pytest.MonkeyPatch, tiny_clip_dir: Path) -> dict[str, Any]:
    """Register a tiny built-in architecture with one hub tag in open_clip's tables."""
    ensure_torchvision()
    import open_clip.factory
    import open_clip.pretrained

    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, TINY_ARCH, dict(TINY_CLIP_CONFIG))
    tag_cfg: dict[str, Any] = {
        "url": "",
        "hf_hub": f"{TINY_REPO}/",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "interpolation": "bilinear",
        "resize_mode": "squash",
        "quick_gelu": True,
    }
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_ARCH, {"tiny": tag_cfg})
    return tag_cfg


def _fake_hf_cache(cache: Path, weights_file: Path, filename: str) -> Path:
    """The layout huggingface_hub leaves after a download (refs/main -> snapshots/<sha>/)."""
    repo = cache / f"models--{TINY_REPO.replace('/', '--')}"
    sha = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    shutil.copy(weights_file, snapshot / filename)
    return snapshot / filename


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("went to the network although the weights are cached")

    monkeypatch.setattr(httpx, "head", refuse)
    monkeypatch.setattr(weights, "unreachable_reason", refuse)


@pytest.mark.usefixtures("no_network")
def test_cached_hub_weights_load_offline_with_the_tag_settings(
    tiny_tag: dict[str, Any], tiny_clip_dir: Path, tmp_path: Path
) -> None:
    cached = _fake_hf_cache(
        tmp_path, tiny_clip_dir / "open_clip_model.safetensors", "open_clip_model.safetensors"
    )
    options = EmbedderOptions(device="cpu", cache_dir=tmp_path)
    embedder = create_embedder(f"open_clip:{TINY_ARCH}@tiny", options)
    embedder.load()
    cfg = embedder.preprocess_cfg
    assert (cfg.mean, cfg.resize_mode) == ((0.5, 0.5, 0.5), "squash")  # the tag's, not defaults
    assert weights.find_cached(tiny_tag, tmp_path) == str(cached)
    # QuickGELU forced from the tag, as the weights were trained with it.
    activations = {type(module).__name__ for module in embedder._model.modules()}
    assert "QuickGELU" in activations
    texts = embedder.embed_texts(["a red circle", "two squares"])
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


@pytest.mark.usefixtures("no_network")
def test_cached_weights_are_the_ones_loaded(tiny_tag: dict[str, Any], tmp_path: Path) -> None:
    # Different weights in the cache than in the tiny model dir: the cached ones must be used.
    tiny_tag["quick_gelu"] = False  # same activations as the local-dir model
    other = write_open_clip_dir(tmp_path / "other", seed=7)
    weights_file = other / "open_clip_model.safetensors"
    _fake_hf_cache(tmp_path / "hf", weights_file, "open_clip_model.safetensors")
    options = EmbedderOptions(device="cpu", cache_dir=tmp_path / "hf")
    from_cache = create_embedder(f"open_clip:{TINY_ARCH}@tiny", options)
    from_dir = create_embedder(f"local:{other}", CPU)
    text = ["a blue triangle"]
    assert np.allclose(from_cache.embed_texts(text), from_dir.embed_texts(text), atol=1e-5)


def test_bin_weights_are_found_when_there_is_no_safetensors_twin(
    tiny_tag: dict[str, Any], tiny_clip_dir: Path, tmp_path: Path
) -> None:
    cached = _fake_hf_cache(
        tmp_path, tiny_clip_dir / "open_clip_model.safetensors", "open_clip_pytorch_model.bin"
    )
    assert weights.find_cached(tiny_tag, tmp_path) == str(cached)
    assert weights.find_cached(tiny_tag, tmp_path / "empty") is None


def test_url_weights_are_found_in_open_clips_url_cache(tmp_path: Path) -> None:
    tag_cfg = {"url": "https://example.invalid/clip/abc123/ViT-Q.pt", "hf_hub": ""}
    assert weights.find_cached(tag_cfg, tmp_path) is None
    (tmp_path / "ViT-Q.pt").write_bytes(b"weights")
    assert weights.find_cached(tag_cfg, tmp_path) == str(tmp_path / "ViT-Q.pt")


def test_reachable_hub_still_downloads(
    monkeypatch: pytest.MonkeyPatch, tiny_tag: dict[str, Any], tiny_clip_dir: Path, tmp_path: Path
) -> None:
    import open_clip

    downloads: list[tuple[dict[str, Any], str | None]] = []

    def fake_download(cfg: dict[str, Any], cache_dir: str | None = None) -> str:
        downloads.append((cfg, cache_dir))
        return str(tiny_clip_dir / "open_clip_model.safetensors")

    monkeypatch.setattr(weights, "unreachable_reason", lambda url: None)
    monkeypatch.setattr(open_clip, "download_pretrained", fake_download)
    embedder = create_embedder(
        f"open_clip:{TINY_ARCH}@tiny", EmbedderOptions(device="cpu", cache_dir=tmp_path)
    )
    embedder.load()
    assert downloads == [(tiny_tag, str(tmp_path))]
    assert embedder.dim == TINY_CLIP_CONFIG["embed_dim"]


# -- the reachability probe -------------------------------------------------------------------


class _NotFound(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def answering_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_probe_counts_any_http_answer_as_reachable(answering_server: str) -> None:
    assert weights.unreachable_reason(answering_server) is None


def test_probe_reports_a_closed_port_quickly() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    reason = weights.unreachable_reason(url)
    assert reason is not None
    assert url in reason
    assert time.perf_counter() - start < 2.0
