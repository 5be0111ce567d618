"""Spec -> VLM adapter: dispatch on ``model_type``, offline ``hf:`` resolution, load failures."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from mmrag.errors import ModelUnavailable, UnknownModel
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import VisionOptions
from mmrag.models.vlm.blip import BlipAnswerer
from mmrag.models.vlm.llava import LlavaAdapter

CPU = VisionOptions(device="cpu", max_new_tokens=2, cpu_threads=1)
TINY_REPO = "mmrag-test/tiny-vlm"


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _edit_config(directory: Path, **changes: object) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE set, and any network call an error."""
    from huggingface_hub import constants

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("went to the network although HF_HUB_OFFLINE is set")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(httpx, "head", refuse)


def test_construction_loads_nothing(tiny_vlm_dir: Callable[[str], Path]) -> None:
    model = create_vision_model(f"local:{tiny_vlm_dir('llava-plain')}", CPU)
    assert isinstance(model, LlavaAdapter)
    assert not model.loaded
    assert model.memory_bytes() == 0


def test_an_unknown_model_type_is_an_unknown_model(
    tiny_vlm_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    directory = _copy(tiny_vlm_dir("llava-plain"), tmp_path / "model")
    _edit_config(directory, model_type="paligemma")
    with pytest.raises(UnknownModel, match="'paligemma' is not a supported vision family"):
        create_vision_model(f"local:{directory}", CPU)


def test_a_blip_checkpoint_that_neither_captions_nor_answers_is_unknown(
    tiny_vlm_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    directory = _copy(tiny_vlm_dir("blip-vqa"), tmp_path / "model")
    _edit_config(directory, architectures=["BlipForImageTextRetrieval"])
    with pytest.raises(UnknownModel, match="BlipForImageTextRetrieval"):
        create_vision_model(f"local:{directory}", CPU)


@pytest.mark.usefixtures("offline_hub")
def test_an_uncached_hf_spec_fails_fast_when_offline(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE") as caught:
        create_vision_model("hf:Qwen/Qwen2.5-VL-3B-Instruct", VisionOptions(cache_dir=tmp_path))
    assert "Qwen/Qwen2.5-VL-3B-Instruct" in str(caught.value)
    assert time.perf_counter() - start < 5.0


def _fake_hf_cache(cache: Path, model_dir: Path) -> None:
    """The layout huggingface_hub leaves after a download (refs/main -> snapshots/<sha>/)."""
    repo = cache / f"models--{TINY_REPO.replace('/', '--')}"
    sha = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(model_dir, repo / "snapshots" / sha)


@pytest.mark.usefixtures("offline_hub")
@pytest.mark.parametrize(
    ("name", "adapter"), [("llava-plain", LlavaAdapter), ("blip-vqa", BlipAnswerer)]
)
def test_a_cached_hf_spec_loads_offline(
    tiny_vlm_dir: Callable[[str], Path], tmp_path: Path, name: str, adapter: type
) -> None:
    _fake_hf_cache(tmp_path, tiny_vlm_dir(name))
    options = VisionOptions(device="cpu", max_new_tokens=2, cpu_threads=1, cache_dir=tmp_path)
    model = create_vision_model(f"hf:{TINY_REPO}", options)
    assert type(model) is adapter
    assert model.source is None  # resolved at load
    model.load()
    assert model.source is not None
    assert model.source.is_relative_to(tmp_path)
    assert model.memory_bytes() > 0


def test_a_chat_family_without_a_chat_template_is_unavailable(
    tiny_vlm_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    directory = _copy(tiny_vlm_dir("qwen2-vl"), tmp_path / "model")
    (directory / "chat_template.jinja").unlink()
    model = create_vision_model(f"local:{directory}", CPU)
    with pytest.raises(ModelUnavailable, match="no chat template"):
        model.load()
    assert not model.loaded


def test_broken_weights_are_unavailable(
    tiny_vlm_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    directory = _copy(tiny_vlm_dir("llava-plain"), tmp_path / "model")
    (directory / "model.safetensors").write_bytes(b"not weights")
    model = create_vision_model(f"local:{directory}", CPU)
    with pytest.raises(ModelUnavailable, match="cannot load"):
        model.load()
