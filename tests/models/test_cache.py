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


class SizedModel(CountingModel):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def memory_bytes(self) -> int:
        return self.size if self.loaded else 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sweep_unloads_only_idle_unleased_models() -> None:
    clock = FakeClock()
    cache = ModelCache(idle_unload_s=60, clock=clock)
    idle = cache.get("idle", CountingModel, CountingModel)
    with cache.lease("busy", CountingModel, CountingModel) as busy:
        clock.now = 120
        assert cache.sweep() == ["idle"]
        assert not idle.loaded
        assert busy.loaded  # leased: a forward pass may be running on it
    clock.now = 150
    assert cache.sweep() == []  # "busy" was used 30 s ago
    clock.now = 200
    assert cache.sweep() == ["busy"]
    # An unloaded model loads again on its next use, from the same cached adapter.
    again = cache.get("idle", CountingModel, CountingModel)
    assert again is idle
    assert idle.loaded
    assert idle.loads == 2


def test_no_idle_limit_means_no_sweep() -> None:
    cache = ModelCache(idle_unload_s=0)
    model = cache.get("a", CountingModel, CountingModel)
    assert cache.sweep() == []
    assert model.loaded


def test_memory_budget_unloads_least_recently_used_first() -> None:
    clock = FakeClock()
    cache = ModelCache(memory_budget_bytes=250, clock=clock)
    first = cache.get("first", lambda: SizedModel(100), SizedModel)
    clock.now = 1
    second = cache.get("second", lambda: SizedModel(100), SizedModel)
    clock.now = 2
    cache.get("first", lambda: SizedModel(100), SizedModel)  # now "second" is the older one
    clock.now = 3
    third = cache.get("third", lambda: SizedModel(100), SizedModel)
    assert third.loaded
    assert first.loaded
    assert not second.loaded
    assert sorted(cache.loaded_keys()) == ["first", "third"]


def test_memory_budget_never_unloads_a_leased_model() -> None:
    cache = ModelCache(memory_budget_bytes=150)
    with cache.lease("held", lambda: SizedModel(100), SizedModel) as held:
        extra = cache.get("extra", lambda: SizedModel(100), SizedModel)
        assert held.loaded  # over budget, but in use: kept, with a warning
        assert extra.loaded


def test_memory_bytes_counts_module_weights_once() -> None:
    import torch

    class TorchModel(InferenceModel):
        def _load(self) -> None:
            self.net = torch.nn.Linear(10, 10)  # 110 float32 values
            self.alias = self.net  # the same weights reached twice

    model = TorchModel(ModelSpec("fixture", "torch"))
    assert model.memory_bytes() == 0
    model.load()
    assert model.memory_bytes() == 110 * 4


def test_a_lease_waits_for_an_unload_in_progress_and_loads_again() -> None:
    clock = FakeClock()
    cache = ModelCache(idle_unload_s=60, clock=clock)
    unloading, finish = threading.Event(), threading.Event()

    class SlowUnload(CountingModel):
        def _unload(self) -> None:
            unloading.set()
            finish.wait(10)  # the weights are half gone meanwhile
            super()._unload()

    model = cache.get("m", SlowUnload, SlowUnload)
    clock.now = 120
    sweeper = threading.Thread(target=cache.sweep)
    sweeper.start()
    assert unloading.wait(10)
    leased: list[bool] = []

    def use() -> None:
        with cache.lease("m", SlowUnload, SlowUnload) as used:
            leased.append(used.loaded)

    user = threading.Thread(target=use)
    user.start()
    user.join(0.2)
    assert leased == []  # no lease on a model being unloaded
    finish.set()
    sweeper.join(10)
    user.join(10)
    assert leased == [True]
    assert model.loads == 2  # loaded again for the lease that waited
