"""``mmrag annotate`` in-process (Typer's runner): a folder captioned, detected, exported;
bad input as one plain ``error:`` line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jobs.conftest import write_scenes
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir
from mmrag.workers.jobs.records import JobRecord
from mmrag.workers.jobs.spec import JobSpec
from mmrag.workers.jobs.store_sqlite import SqliteJobStore

pytestmark = pytest.mark.slow

runner = CliRunner()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_clip_dir: Path,
    tiny_vlm_spec: str,
    tiny_grounding_spec: str,
) -> Path:
    for name in ("MMRAG_ALLOWED_ROOTS", "MMRAG_PROFILE", "MMRAG_WORKERS__MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MMRAG_MODELS__EMBEDDER", f"local:{tiny_clip_dir}")
    monkeypatch.setenv("MMRAG_MODELS__VLM", tiny_vlm_spec)
    monkeypatch.setenv("MMRAG_MODELS__GROUNDING", tiny_grounding_spec)
    monkeypatch.setenv("MMRAG_MODELS__DEVICE", "cpu")
    monkeypatch.setenv("MMRAG_MODELS__CACHE_DIR", str(default_cache_dir()))
    monkeypatch.setenv("MMRAG_SAMPLES__ENABLED", "false")
    photos = tmp_path / "photos"
    write_scenes(photos, 5)
    (photos / "broken.png").write_bytes(b"not an image")
    return photos


def test_annotate_a_folder_and_export_coco(env: Path, tmp_path: Path) -> None:
    # A job the server queued in the same data dir: the CLI drives only its own.
    path = Settings(allowed_roots=[env]).data_dir / "jobs.sqlite3"
    store = SqliteJobStore(path)
    spec = JobSpec.model_validate({"source": {"kind": "indexed"}, "tasks": [{"task": "embed"}]})
    queued = JobRecord(spec=spec, total=1)
    store.create(queued, ["0" * 32])
    store.close()
    out = tmp_path / "out.json"
    result = runner.invoke(
        app,
        [
            *("annotate", str(env), "--caption", "--detect", "red circle, blue square"),
            *("--export", "coco", str(out)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "done 5, failed 1" in result.output
    assert "failed (1)" in result.output  # the table of failures
    coco = json.loads(out.read_text())
    assert len(coco["images"]) == 5
    assert [c["name"] for c in coco["categories"]] == ["red circle", "blue square"]
    assert all("caption" in image for image in coco["images"])
    store = SqliteJobStore(path)
    assert store.get(queued.id).state == "queued"
    assert store.counts(queued.id)["pending"] == 1
    store.close()


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["annotate", "/no/such/dir", "--caption"], "no such file"),
        (["annotate", "{env}", "--detect", " , "], "--detect needs at least one"),
        (["annotate", "{env}", "--caption", "--export", "xml", "out.x"], "unknown export format"),
    ],
)
def test_bad_input_is_one_error_line(env: Path, arguments: list[str], said: str) -> None:
    result = runner.invoke(app, [argument.format(env=env) for argument in arguments])
    assert result.exit_code == 1
    # One message (the console may wrap it), no traceback.
    assert result.output.startswith("error: "), result.output
    assert result.output.count("error") == 1
    assert said in " ".join(result.output.split())
