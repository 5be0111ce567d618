"""Fixture cache: names, keys, atomic builds, one build under concurrency. No training."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mmrag.errors import ModelUnavailable, UnknownModel
from mmrag.models.clip.embedder import EmbedderOptions
from mmrag.models.fixtures import build as fixture_build
from mmrag.models.fixtures import default_cache_dir, fixture_directory
from mmrag.models.fixtures.build import cached_directory, entry_key, is_cached, library_versions
from mmrag.models.fixtures.progress import report_step
from mmrag.models.fixtures.recipe import DEFAULT_RECIPE
from mmrag.models.registry import create_embedder


class CountingBuild:
    """A stand-in for training: writes one file, slowly, and counts its calls."""

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.seconds = seconds
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, directory: Path, threads: int) -> None:
        with self._lock:
            self.calls += 1
        (directory / "weights.bin").write_bytes(b"half")
        report_step(1, 2)
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("training blew up")
        (directory / "weights.bin").write_bytes(b"done")
        report_step(2, 2)


def _install(monkeypatch: pytest.MonkeyPatch, build: CountingBuild, key: str = "k1") -> None:
    fixture = fixture_build.Fixture(key=key, build=build)
    fixtures = {"fake": lambda: fixture}
    monkeypatch.setattr(fixture_build, "FIXTURES", fixtures)


def test_unknown_fixture_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="shapes-clip"):
        fixture_directory("no-such-fixture", tmp_path)


def test_unknown_fixture_through_the_registry(tmp_path: Path) -> None:
    with pytest.raises(
        UnknownModel, match="known fixtures are shapes-clip, shapes-grounding, shapes-vlm"
    ):
        create_embedder("fixture:nope", EmbedderOptions(device="cpu", cache_dir=tmp_path))


def test_builds_once_then_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = CountingBuild()
    _install(monkeypatch, build)
    first = fixture_directory("fake", tmp_path)
    second = fixture_directory("fake", tmp_path)
    assert first == second == cached_directory("fake", tmp_path)
    assert first.name == f"fake-{entry_key('k1', library_versions())}"
    assert (first / "weights.bin").read_bytes() == b"done"
    assert build.calls == 1


def test_a_changed_recipe_key_builds_a_new_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = CountingBuild()
    _install(monkeypatch, build, key="k1")
    old = fixture_directory("fake", tmp_path)
    _install(monkeypatch, build, key="k2")
    new = fixture_directory("fake", tmp_path)
    assert old != new
    assert build.calls == 2


def test_a_failed_build_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, CountingBuild(fail=True))
    with pytest.raises(RuntimeError, match="blew up"):
        fixture_directory("fake", tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fake.lock"]
    retry = CountingBuild()
    _install(monkeypatch, retry)
    assert (fixture_directory("fake", tmp_path) / "weights.bin").read_bytes() == b"done"
    assert retry.calls == 1


def test_concurrent_callers_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # flock binds to the open file description, so threads that open the lock file
    # separately exclude each other just as processes do.
    build = CountingBuild(seconds=0.3)
    _install(monkeypatch, build)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(fixture_directory("fake", tmp_path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert build.calls == 1
    assert results == [cached_directory("fake", tmp_path)] * 4
    assert (results[0] / "weights.bin").read_bytes() == b"done"


def test_default_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMRAG_FIXTURE_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("MMRAG_FIXTURE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mmrag" / "fixtures"


def test_none_cache_dir_means_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_FIXTURE_CACHE", str(tmp_path))
    _install(monkeypatch, CountingBuild())
    assert fixture_directory("fake", None) == cached_directory("fake", tmp_path)


def test_recipe_key_is_stable_and_changes_with_the_recipe() -> None:
    assert DEFAULT_RECIPE.key() == dataclasses.replace(DEFAULT_RECIPE).key()
    changed = [
        dataclasses.replace(DEFAULT_RECIPE, seed=DEFAULT_RECIPE.seed + 1),
        dataclasses.replace(DEFAULT_RECIPE, steps=DEFAULT_RECIPE.steps + 1),
        dataclasses.replace(
            DEFAULT_RECIPE, model_cfg={**DEFAULT_RECIPE.model_cfg, "embed_dim": 32}
        ),
    ]
    keys = {recipe.key() for recipe in changed}
    assert len(keys) == 3
    assert DEFAULT_RECIPE.key() not in keys


def test_recipe_key_changes_with_the_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmrag.models.fixtures import recipe

    before = DEFAULT_RECIPE.key()
    monkeypatch.setattr(recipe, "TRAINER_VERSION", recipe.TRAINER_VERSION + 1)
    assert DEFAULT_RECIPE.key() != before


def test_a_fixture_without_its_trainer_is_unavailable_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = fixture_build._from_module("mmrag.models.fixtures.no_such_trainer")
    monkeypatch.setattr(fixture_build, "FIXTURES", {"pending": missing})
    with pytest.raises(ModelUnavailable, match="no trainer for the fixture"):
        fixture_directory("pending", tmp_path)


def test_an_entry_trained_under_other_library_versions_is_never_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = CountingBuild()
    _install(monkeypatch, build)
    old = fixture_directory("fake", tmp_path)
    upgraded = {**library_versions(), "transformers": "99.0.0"}
    monkeypatch.setattr(fixture_build, "library_versions", lambda: upgraded)
    assert not is_cached("fake", tmp_path)
    new = fixture_directory("fake", tmp_path)
    assert new != old
    assert build.calls == 2
    manifest = json.loads((new / fixture_build.COMPLETE_MARKER).read_text())
    assert manifest["libraries"]["transformers"] == "99.0.0"
    assert manifest["recipe"] == "k1"


def test_the_key_covers_the_libraries_that_shape_the_weights() -> None:
    versions = library_versions()
    assert {"torch", "transformers", "tokenizers", "open-clip-torch"} <= set(versions)
    assert "absent" not in {versions[name] for name in ("torch", "transformers", "tokenizers")}
    for name in ("torch", "transformers", "tokenizers", "open-clip-torch"):
        assert entry_key("k1", {**versions, name: "0.0.1"}) != entry_key("k1", versions)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda entry: (entry / "weights.bin").write_bytes(b"do"), id="truncated"),
        pytest.param(lambda entry: (entry / "weights.bin").write_bytes(b"dune"), id="altered"),
        pytest.param(lambda entry: (entry / "weights.bin").unlink(), id="file-deleted"),
        pytest.param(lambda entry: (entry / "stray.bin").write_bytes(b"x"), id="file-added"),
        pytest.param(
            lambda entry: (entry / fixture_build.COMPLETE_MARKER).write_text("{not json"),
            id="corrupt-marker",
        ),
    ],
)
def test_a_damaged_entry_is_rebuilt_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Callable[[Path], object]
) -> None:
    build = CountingBuild()
    _install(monkeypatch, build)
    entry = fixture_directory("fake", tmp_path)
    damage(entry)
    assert not is_cached("fake", tmp_path)
    assert fixture_directory("fake", tmp_path) == entry
    assert build.calls == 2
    assert sorted(path.name for path in entry.iterdir()) == [
        fixture_build.COMPLETE_MARKER,
        "weights.bin",
    ]
    assert (entry / "weights.bin").read_bytes() == b"done"
    assert is_cached("fake", tmp_path)


def test_a_build_killed_midway_is_cleaned_up_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = CountingBuild()
    _install(monkeypatch, build)
    # What a SIGKILL leaves: a staging directory, and an entry that never got its marker
    # (an older layout, or a copy interrupted by hand).
    abandoned = tmp_path / ".fake-x1y2z3"
    abandoned.mkdir()
    (abandoned / "weights.bin").write_bytes(b"half")
    entry = cached_directory("fake", tmp_path)
    entry.mkdir()
    (entry / "weights.bin").write_bytes(b"half")
    assert fixture_directory("fake", tmp_path) == entry
    assert build.calls == 1
    assert (entry / "weights.bin").read_bytes() == b"done"
    assert not abandoned.exists()


def test_a_build_reports_its_steps_to_a_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, CountingBuild())
    steps: list[tuple[int, int]] = []
    fixture_directory("fake", tmp_path, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 2), (2, 2)]
    # A cached fixture trains nothing, so it reports nothing.
    fixture_directory("fake", tmp_path, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 2), (2, 2)]
