"""`mmrag reindex` from the shell: progress, the summary line, and one line for a bad spec."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.config import StoreSettings
from mmrag.models.clip.tiny import TINY_CLIP_CONFIG, write_open_clip_dir
from mmrag.retrieval.aliases import physical_collection
from mmrag.retrieval.store_edge import EdgeVectorStore

runner = CliRunner()


@pytest.fixture
def indexed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_clip_dir: Path) -> Path:
    for name in ("MMRAG_ALLOWED_ROOTS", "MMRAG_PROFILE", "MMRAG_MODELS__EMBEDDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MMRAG_MODELS__EMBEDDER", f"local:{tiny_clip_dir}")
    monkeypatch.setenv("MMRAG_MODELS__DEVICE", "cpu")
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, colour in enumerate([(250, 0, 0), (0, 250, 0), (0, 0, 250)]):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
        (photos / f"{index}.png").write_bytes(buffer.getvalue())
    assert runner.invoke(app, ["index", str(photos)]).exit_code == 0
    return tmp_path


def test_reindex_then_serve_the_new_embedder(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = {**TINY_CLIP_CONFIG, "embed_dim": 16}
    spec = f"local:{write_open_clip_dir(indexed / 'narrow', narrow, seed=5)}"
    done = runner.invoke(app, ["reindex", "--embedder", spec, "--grace-s", "0"])
    assert done.exit_code == 0, done.output
    assert f"re-indexed with {spec}: 3 re-embedded" in done.output
    assert f"set MMRAG_MODELS__EMBEDDER={spec}" in done.output
    # Still configured with the old embedder: refused, with the way forward.
    stale = runner.invoke(app, ["search", "a red square"])
    assert stale.exit_code == 1
    assert f"error: the collection was embedded by {spec} (16-d)" in stale.output
    monkeypatch.setenv("MMRAG_MODELS__EMBEDDER", spec)
    found = runner.invoke(app, ["search", "a red square", "--limit", "3"])
    assert found.exit_code == 0, found.output


def test_a_reindex_serves_its_first_search_from_a_built_index(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_more(indexed)  # the engine leaves a segment of a few hundred bytes unindexed
    monkeypatch.setenv("MMRAG_STORE__HNSW__MIN_POINTS", "1")
    narrow = {**TINY_CLIP_CONFIG, "embed_dim": 16}
    spec = f"local:{write_open_clip_dir(indexed / 'narrow', narrow, seed=5)}"
    done = runner.invoke(app, ["reindex", "--embedder", spec, "--grace-s", "0"])
    assert done.exit_code == 0, done.output

    name = physical_collection(indexed / "data", "mmrag_images")
    store = EdgeVectorStore(indexed / "data" / "qdrant", StoreSettings(collection=name))
    try:
        assert store.count() == 63
        assert store.info().indexed_vectors >= 63
    finally:
        store.close()


def test_a_bad_spec_is_one_line(indexed: Path) -> None:
    result = runner.invoke(app, ["reindex", "--embedder", "hf:Qwen/Qwen2-VL-2B-Instruct"])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: hf:Qwen/Qwen2-VL-2B-Instruct: this model loads from")


def index_more(indexed: Path, count: int = 60) -> None:
    photos = indexed / "more"
    photos.mkdir()
    for index in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (24 + index, 24), (index * 4, 255 - index * 4, 90)).save(buffer, "PNG")
        (photos / f"{index}.png").write_bytes(buffer.getvalue())
    assert runner.invoke(app, ["index", str(photos)]).exit_code == 0


def test_a_killed_reindex_resumes(indexed: Path, tiny_clip_dir: Path) -> None:
    index_more(indexed)
    narrow = {**TINY_CLIP_CONFIG, "embed_dim": 16}
    spec = f"local:{write_open_clip_dir(indexed / 'narrow', narrow, seed=5)}"
    env = {**os.environ, "MMRAG_MODELS__BATCH_SIZE": "1"}
    command = [sys.executable, "-m", "mmrag.cli", "reindex", "--embedder", spec]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the first progress line comes after a few batches
            if re.match(r"re-embedded [1-9]\d* of 63", line):
                break
        else:
            raise AssertionError("the re-index ended without reporting progress")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert physical_collection(indexed / "data", "mmrag_images") == "mmrag_images"  # no switch
    resumed = runner.invoke(app, ["reindex", "--embedder", spec, "--grace-s", "0"])
    assert resumed.exit_code == 0, resumed.output
    copied, skipped = (
        int(number)
        for number in re.findall(r"(\d+) re-embedded, (\d+) from an earlier run", resumed.output)[0]
    )
    assert skipped >= 1
    assert copied + skipped == 63
