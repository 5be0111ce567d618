"""The mmrag CLI in-process (Typer's runner), on the real store and the tiny embedder."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmrag.cli import app


def write_png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_clip_dir: Path) -> Path:
    for name in ("MMRAG_ALLOWED_ROOTS", "MMRAG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MMRAG_MODELS__EMBEDDER", f"local:{tiny_clip_dir}")
    monkeypatch.setenv("MMRAG_MODELS__DEVICE", "cpu")
    photos = tmp_path / "photos"
    write_png(photos / "red.png", (250, 0, 0))
    write_png(photos / "deeper" / "green.png", (0, 250, 0))
    write_png(photos / "deeper" / "blue.png", (0, 0, 250))
    (photos / "broken.jpg").write_bytes(b"definitely not a jpeg")
    (photos / "notes.txt").write_text("ignored: not an image name")
    return photos


runner = CliRunner()


def test_index_search_stats(env: Path) -> None:
    first = runner.invoke(app, ["index", str(env)])

    assert first.exit_code == 0, first.output
    assert "indexed 3, duplicates 0, failed 1" in first.output
    assert "broken.jpg" in first.output
    # Off a terminal, progress is a line a tenth, in the command's own words.
    assert " of 4" in first.output
    assert "re-embedded" not in first.output

    again = runner.invoke(app, ["index", str(env)])
    assert "indexed 0, duplicates 3, failed 1" in again.output

    found = runner.invoke(app, ["search", "a red square", "--limit", "2"])
    assert found.exit_code == 0, found.output
    assert "2 results" in found.output

    by_image = runner.invoke(app, ["search", "--image", str(env / "red.png"), "--limit", "1"])
    assert by_image.exit_code == 0, by_image.output
    assert "red.png" in by_image.output

    stats = runner.invoke(app, ["stats"])
    assert stats.exit_code == 0
    assert "images" in stats.output
    assert " 3 " in stats.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "/nonexistent/photos"], "no such file or directory"),
        (["search", "x", "--image", "also.png"], "not both"),
        (["search"], "not both"),
        (["search", "x", "--limit", "1000000000"], "limit must be between"),
        (["search", "x", "--target", "everything"], "unknown target"),
        (["search", "x", "--filter", "{not json"], "bad --filter"),
        (["search", "x", "--filter", '{"colour": "red"}'], "bad --filter colour"),
        (["search", "--image", "/nonexistent.png"], "cannot read"),
        (["search", "--image", "/tmp"], "not a file"),
    ],
)
def test_errors_are_one_plain_line(env: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)

    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_index_refuses_paths_outside_configured_roots(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("MMRAG_ALLOWED_ROOTS", f'["{allowed}"]')

    result = runner.invoke(app, ["index", str(env)])

    assert result.exit_code == 1
    assert "outside the allowed roots" in result.output


def test_bad_setting_is_one_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_STORE__BACKEND", "cassandra")

    result = runner.invoke(app, ["stats"])

    assert result.exit_code == 1
    assert result.output.startswith("error: invalid setting store.backend")


@pytest.mark.parametrize(
    ("backend", "precision", "says"),
    [
        ("tensorrt", "auto", "invalid setting models.backend"),
        ("auto", "fp8", "invalid setting models.precision"),
        ("onnxruntime", "bf16", "backend onnxruntime does not run bf16"),
    ],
)
def test_an_unknown_or_unrunnable_backend_stops_serve_with_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, backend: str, precision: str, says: str
) -> None:
    monkeypatch.setenv("MMRAG_MODELS__BACKEND", backend)
    monkeypatch.setenv("MMRAG_MODELS__PRECISION", precision)

    result = runner.invoke(app, ["serve", "--port", "1"])

    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1
