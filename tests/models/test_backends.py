"""Embedding backends: each runtime and precision matches torch fp32 within its parity bound,
exports are cached intact (a damaged one is rebuilt), a wrong export is refused and the next
candidate serves, and auto falls back when a library is missing."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from mmrag.config import ModelSettings
from mmrag.models.clip import backends
from mmrag.models.clip.backends import Choice, candidates, check_choice, has_bf16
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions
from mmrag.models.clip.onnx_export import MANIFEST, file_digest, intact
from mmrag.models.clip.parity import BOUNDS, probe_images
from mmrag.models.clip.tiny import write_open_clip_dir
from mmrag.models.fixtures import default_cache_dir
from mmrag.models.registry import create_embedder

TEXTS = ["a red circle", "two green squares", "a blue triangle on the left"]
PAIRS = [
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("torch", "int8"),
    ("torch", "bf16"),
]


def _load(spec: str, export_dir: Path, backend: str, precision: str) -> ClipEmbedder:
    options = EmbedderOptions(
        device="cpu",
        batch_size=8,
        backend=backend,  # type: ignore[arg-type]
        precision=precision,  # type: ignore[arg-type]
        export_dir=export_dir,
        cache_dir=default_cache_dir() if spec.startswith("fixture:") else None,
    )
    embedder = create_embedder(spec, options)
    embedder.load()
    return embedder


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b, axis=1).min())


def _assert_matches(candidate: ClipEmbedder, reference: ClipEmbedder, bound: float) -> None:
    images = probe_images(reference.preprocess_cfg)
    # Other images than the probes: parity at load must generalise, not be fitted to them.
    rng = np.random.default_rng(7)
    others = [rng.integers(0, 256, images[0].shape, dtype=np.uint8) for _ in range(3)] + [
        np.full(images[0].shape, 200, np.uint8)
    ]
    for batch in (images, others):
        got, want = candidate.embed_prepared(batch), reference.embed_prepared(batch)
        assert got.dtype == np.float32
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert _min_cosine(got, want) >= bound
    assert _min_cosine(candidate.embed_texts(TEXTS), reference.embed_texts(TEXTS)) >= bound


def _skip_unrunnable(backend: str, precision: str) -> None:
    if precision == "bf16" and not has_bf16():
        pytest.skip("this CPU has no AMX or AVX-512 BF16")


# -- which candidates, in which order -------------------------------------------------------


def test_auto_ranks_by_cpu_features_and_ends_with_torch_fp32() -> None:
    amx, _ = candidates("auto", "auto", frozenset({"avx2", "avx512f", "amx_bf16"}))
    avx2, why = candidates("auto", "auto", frozenset({"avx2"}))
    assert amx[0] == Choice("openvino", "bf16")
    assert avx2[0] == Choice("onnxruntime", "int8")
    assert "int8 first" in why
    assert all(choice.precision != "bf16" for choice in avx2)  # emulated bf16 is slower
    for order in (amx, avx2):
        assert order[-1] == Choice("torch", "fp32")
        assert order.count(Choice("torch", "fp32")) == 1


def test_a_configured_pair_is_tried_first_then_torch_fp32() -> None:
    order, _ = candidates("onnxruntime", "int8", frozenset({"avx2"}))
    assert order == [Choice("onnxruntime", "int8"), Choice("torch", "fp32")]
    order, _ = candidates("auto", "int8", frozenset({"avx2"}))
    assert order == [
        Choice("onnxruntime", "int8"),
        Choice("torch", "int8"),
        Choice("torch", "fp32"),
    ]
    order, _ = candidates("torch", "auto", frozenset())
    assert order == [Choice("torch", "fp32")]


def test_settings_refuse_what_this_machine_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="does not run bf16"):
        ModelSettings(backend="onnxruntime", precision="bf16")
    with pytest.raises(ValidationError, match="does not run int8"):
        ModelSettings(backend="openvino", precision="int8")
    with pytest.raises(ValidationError, match="backend"):
        ModelSettings(backend="tensorrt")
    with pytest.raises(ValidationError, match="precision"):
        ModelSettings(precision="fp8")
    # A CPU without bf16 units: a pair that asks for bf16 is refused, auto is not.
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2"}))
    assert "AMX" in (check_choice("openvino", "bf16") or "")
    assert check_choice("auto", "bf16") is None
    # A library that is not installed.
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert "not installed" in (check_choice("openvino", "fp32") or "")


# -- each backend against torch fp32 ----------------------------------------------------------


@pytest.mark.parametrize(("backend", "precision"), PAIRS)
def test_each_backend_matches_torch_on_the_tiny_model(
    backend: str,
    precision: str,
    tiny_clip_dir: Path,
    tiny_embedder: ClipEmbedder,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _skip_unrunnable(backend, precision)
    export_dir = tmp_path_factory.getbasetemp() / "exports"
    embedder = _load(f"local:{tiny_clip_dir}", export_dir, backend, precision)
    assert (embedder.serving.backend, embedder.serving.precision) == (backend, precision)
    assert embedder.dim == tiny_embedder.dim
    _assert_matches(embedder, tiny_embedder, BOUNDS[precision])  # type: ignore[index]


@pytest.fixture(scope="module")
def shapes_clip() -> ClipEmbedder:
    return _load("fixture:shapes-clip", Path("/nonexistent"), "torch", "fp32")


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "precision"), [*PAIRS, ("auto", "auto")])
def test_each_backend_matches_torch_on_the_fixture_clip(
    backend: str,
    precision: str,
    shapes_clip: ClipEmbedder,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _skip_unrunnable(backend, precision)
    export_dir = tmp_path_factory.getbasetemp() / "fixture-exports"
    embedder = _load("fixture:shapes-clip", export_dir, backend, precision)
    if backend != "auto":
        assert (embedder.serving.backend, embedder.serving.precision) == (backend, precision)
    served = embedder.serving.precision
    _assert_matches(embedder, shapes_clip, BOUNDS[served])  # type: ignore[index]


# -- the export cache ---------------------------------------------------------------------------


def _entries(export_dir: Path) -> list[Path]:
    return sorted(path for path in export_dir.glob("clip-*") if path.is_dir())


def test_a_damaged_export_is_rebuilt_and_a_killed_one_cleaned_up(
    tiny_clip_dir: Path, tiny_embedder: ClipEmbedder, tmp_path: Path
) -> None:
    first = _load(f"local:{tiny_clip_dir}", tmp_path, "onnxruntime", "fp32")
    assert first.serving.backend == "onnxruntime"
    [entry] = _entries(tmp_path)
    assert intact(entry) is None
    image = entry / "image.onnx"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])  # truncated
    assert intact(entry) == "image.onnx changed since it was written"
    killed = tmp_path / ".clip-killed"  # a staging directory an export left when killed
    killed.mkdir()
    (killed / "image.onnx").write_bytes(b"half")

    again = _load(f"local:{tiny_clip_dir}", tmp_path, "onnxruntime", "fp32")

    assert again.serving.backend == "onnxruntime"
    assert _entries(tmp_path) == [entry]
    assert intact(entry) is None
    assert not killed.exists()
    _assert_matches(again, tiny_embedder, BOUNDS["fp32"])


def test_an_export_without_its_manifest_never_loads(tiny_clip_dir: Path, tmp_path: Path) -> None:
    _load(f"local:{tiny_clip_dir}", tmp_path, "onnxruntime", "fp32")
    [entry] = _entries(tmp_path)
    (entry / MANIFEST).unlink()  # as a rename that never happened leaves nothing to trust
    assert intact(entry) == "its export never finished"
    _load(f"local:{tiny_clip_dir}", tmp_path, "onnxruntime", "fp32")
    assert intact(entry) is None


def test_a_wrong_export_is_refused_and_the_next_backend_serves(
    tiny_clip_dir: Path,
    tiny_embedder: ClipEmbedder,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The fp32 entry of the tiny model, with another model's towers in it and a manifest
    # that vouches for them: only parity can tell.
    _load(f"local:{tiny_clip_dir}", tmp_path, "onnxruntime", "fp32")
    [entry] = _entries(tmp_path)
    other_dir = write_open_clip_dir(tmp_path / "other-model", seed=1)
    _load(f"local:{other_dir}", tmp_path / "other", "onnxruntime", "fp32")
    [other] = _entries(tmp_path / "other")
    manifest = json.loads((entry / MANIFEST).read_text())
    for name in ("image.onnx", "text.onnx"):
        (entry / name).write_bytes((other / name).read_bytes())
        size, digest = file_digest(entry / name)
        manifest["files"][name] = {"size": size, "sha256": digest}
    (entry / MANIFEST).write_text(json.dumps(manifest))

    with caplog.at_level(logging.WARNING):
        refused = _load(f"local:{tiny_clip_dir}", tmp_path, "onnxruntime", "fp32")
    assert (refused.serving.backend, refused.serving.precision) == ("torch", "fp32")
    assert "onnxruntime/fp32: parity" in refused.serving.reason
    # (the test's temporary directory has "refused" in its name: the message's own words)
    lines = [r.getMessage() for r in caplog.records if " refused: " in r.getMessage()]
    assert len(lines) == 1
    assert "onnxruntime/fp32" in lines[0]

    # auto: every candidate reading the wrong fp32 export is refused; the int8 export (its
    # own entry, made from the real weights) serves.
    served = _load(f"local:{tiny_clip_dir}", tmp_path, "auto", "auto")
    assert (served.serving.backend, served.serving.precision) == ("onnxruntime", "int8")
    _assert_matches(served, tiny_embedder, BOUNDS["int8"])


def test_auto_without_a_library_falls_back_with_a_log_line(
    tiny_clip_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with caplog.at_level(logging.WARNING):
        embedder = _load(f"local:{tiny_clip_dir}", tmp_path, "auto", "auto")
    assert (embedder.serving.backend, embedder.serving.precision) == ("torch", "fp32")
    skipped = [r.getMessage() for r in caplog.records if "not installed" in r.getMessage()]
    assert skipped
    assert all("skipped" in line for line in skipped)


def test_an_unwritable_export_dir_falls_back_to_torch(tiny_clip_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    embedder = _load(f"local:{tiny_clip_dir}", blocker / "exports", "onnxruntime", "int8")
    assert (embedder.serving.backend, embedder.serving.precision) == ("torch", "fp32")
    assert "onnxruntime/int8" in embedder.serving.reason


def test_auto_races_the_two_best_ranked_and_says_so(
    tiny_clip_dir: Path, tiny_embedder: ClipEmbedder, tmp_path: Path
) -> None:
    embedder = _load(f"local:{tiny_clip_dir}", tmp_path, "auto", "auto")
    first_two = [str(choice) for choice in candidates("auto", "auto")[0][:2]]
    served = f"{embedder.serving.backend}/{embedder.serving.precision}"
    assert served in first_two
    reason = embedder.serving.reason
    assert "timed probe of 4 images" in reason
    assert all(name in reason.split("timed probe")[1] for name in first_two)
    _assert_matches(embedder, tiny_embedder, BOUNDS[embedder.serving.precision])  # type: ignore[index]
