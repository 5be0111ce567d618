"""Each model is built and loaded once per process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mmrag.models.base import InferenceModel
from mmrag.models.cache import ModelCache
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions
from mmrag.models.registry import create_embedder
from mmrag.models.spec import ModelSpec


class CountingModel(InferenceModel):
    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(ModelSpec("fixture", "counting"))
        self.loads = 0
        self.unloads = 0
        self.delay_s = delay_s

    def _load(self) -> None:
        time.sleep(self.delay_s)  # widen the window for racing threads
        self.loads += 1

    def _unload(self) -> None:
        self.unloads += 1


class OtherModel(CountingModel):
    pass


def test_load_runs_once() -> None:
    model = CountingModel()
    assert not model.loaded
    model.load()
    model.load()
    assert model.loaded
    assert model.loads == 1


def test_load_runs_once_across_threads() -> None:
    model = CountingModel(delay_s=0.05)
    threads = [threading.Thread(target=model.load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert model.loads == 1


def test_failed_load_is_retried_on_next_use() -> None:
    class Flaky(CountingModel):
        def _load(self) -> None:
            super()._load()
            if self.loads == 1:
                raise RuntimeError("first try fails")

    model = Flaky()
    with pytest.raises(RuntimeError):
        model.load()
    assert not model.loaded
    model.load()
    assert model.loaded
    assert model.loads == 2


def test_cache_builds_and_loads_once_and_returns_the_same_object() -> None:
    cache = ModelCache()
    built: list[CountingModel] = []

    def factory() -> CountingModel:
        built.append(CountingModel())
        return built[-1]

    first = cache.get("fixture:counting", factory, CountingModel)
    second = cache.get("fixture:counting", factory, CountingModel)
    assert first is second
    assert len(built) == 1
    assert first.loaded
    assert first.loads == 1


def test_cache_keys_are_independent() -> None:
    cache = ModelCache()
    a = cache.get("a", CountingModel, CountingModel)
    b = cache.get("b", CountingModel, CountingModel)
    assert a is not b


def test_cache_is_safe_across_threads() -> None:
    cache = ModelCache()
    built: list[CountingModel] = []
    results: list[CountingModel] = []

    def factory() -> CountingModel:
        built.append(CountingModel(delay_s=0.05))
        return built[-1]

    def worker() -> None:
        results.append(cache.get("key", factory, CountingModel))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert all(result is built[0] for result in results)
    assert built[0].loads == 1


def test_cache_refuses_a_model_of_another_kind() -> None:
    cache = ModelCache()
    cache.get("key", CountingModel, CountingModel)
    with pytest.raises(TypeError, match="CountingModel"):
        cache.get("key", OtherModel, OtherModel)


def test_unload_all_unloads_and_forgets() -> None:
    cache = ModelCache()
    model = cache.get("key", CountingModel, CountingModel)
    cache.unload_all()
    assert model.unloads == 1
    assert not model.loaded
    again = cache.get("key", CountingModel, CountingModel)
    assert again is not model


def test_cache_holds_one_loaded_embedder_per_spec(
    tiny_clip_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[ClipEmbedder] = []
    original = ClipEmbedder._load

    def counting_load(self: ClipEmbedder) -> None:
        loads.append(self)
        original(self)

    monkeypatch.setattr(ClipEmbedder, "_load", counting_load)
    cache = ModelCache()
    spec = f"local:{tiny_clip_dir}"

    def factory() -> ClipEmbedder:
        return create_embedder(spec, EmbedderOptions(device="cpu"))

    first = cache.get(spec, factory, ClipEmbedder)
    second = cache.get(spec, factory, ClipEmbedder)
    assert first is second
    assert len(loads) == 1
    assert first.loaded
    assert first.embed_texts(["a red circle"]).shape == (1, first.dim)
    assert len(loads) == 1  # using it does not load again
