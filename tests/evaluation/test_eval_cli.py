"""`mmrag eval retrieval|captions|vqa|grounding` on datasets made from the shapes world in
each standard format, with the fixture models (their figures as the README states them) and
side by side with the tiny random embedder; and every bad dataset refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.evaluation.shapes_sets import write_shapes_sets

runner = CliRunner()
SCENES = 50


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_shapes_sets(tmp_path_factory.mktemp("shapes-sets"), SCENES)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMRAG_PROFILE", "offline")
    monkeypatch.setenv("MMRAG_MODELS__DEVICE", "cpu")
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MMRAG_MODELS__EMBEDDER", raising=False)


def _eval(tmp_path: Path, *args: str) -> dict[str, dict[str, float]]:
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["eval", *args, "--json", str(report)])
    assert result.exit_code == 0, result.output
    payload = json.loads(report.read_text())
    return {model["spec"]: model["metrics"] for model in payload["models"]}


@pytest.mark.slow
def test_retrieval_side_by_side(sets: dict[str, Path], tmp_path: Path, tiny_clip_dir: Path) -> None:
    tiny = f"local:{tiny_clip_dir}"
    page = tmp_path / "report.html"
    found = _eval(
        tmp_path,
        "retrieval",
        str(sets["karpathy"]),
        "--images",
        str(sets["images"]),
        "--spec",
        "fixture:shapes-clip",
        "--spec",
        tiny,
        "--html",
        str(page),
    )
    fixture = found["fixture:shapes-clip"]
    # The README's figures (50 held-out scenes).
    assert fixture["text->image R@1"] == pytest.approx(70.0, abs=2.5)
    assert fixture["image->text R@1"] == pytest.approx(40.0, abs=2.5)
    assert fixture["text->image R@10"] == 100.0
    # The random-weight embedder ranks near chance: 1 in 50 at R@1.
    assert found[tiny]["text->image R@1"] < 20.0
    html = page.read_text()
    assert html.count("<polyline") == 4  # two directions for each of two models
    assert "fixture:shapes-clip" in html


def test_retrieval_reads_coco_captions_as_karpathy(
    sets: dict[str, Path], tmp_path: Path, tiny_clip_dir: Path
) -> None:
    spec = f"local:{tiny_clip_dir}"
    common = ["--images", str(sets["images"]), "--spec", spec]
    karpathy = _eval(tmp_path, "retrieval", str(sets["karpathy"]), *common)
    coco = _eval(tmp_path, "retrieval", str(sets["coco_captions"]), *common)
    assert karpathy == coco


@pytest.mark.slow
def test_captions_vqa_and_grounding_with_the_fixtures(
    sets: dict[str, Path], tmp_path: Path
) -> None:
    images = ["--images", str(sets["images"])]
    captions = _eval(tmp_path, "captions", str(sets["coco_captions"]), *images)
    assert captions["fixture:shapes-vlm"]["BLEU-4"] == pytest.approx(86.9, abs=2.5)
    assert captions["fixture:shapes-vlm"]["CIDEr"] == pytest.approx(632.4, abs=15)
    vqa = _eval(tmp_path, "vqa", str(sets["vqa_questions"]), str(sets["vqa_annotations"]), *images)
    assert vqa["fixture:shapes-vlm"]["VQA accuracy"] >= 95.0
    boxes = _eval(tmp_path, "grounding", str(sets["detection"]), *images)
    assert boxes["fixture:shapes-grounding"]["AP50"] >= 95.0
    assert boxes["fixture:shapes-grounding"]["AP"] == pytest.approx(78.6, abs=2.5)


def _refused(*args: str) -> str:
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: ")
    return line


def _edited(source: Path, tmp_path: Path, edit: object) -> Path:
    payload = json.loads(source.read_text())
    assert callable(edit)
    edit(payload)
    path = tmp_path / source.name
    path.write_text(json.dumps(payload))
    return path


def test_bad_datasets_are_one_line_each(sets: dict[str, Path], tmp_path: Path) -> None:
    images = ["--images", str(sets["images"])]

    def missing(payload: dict[str, list[dict[str, object]]]) -> None:
        payload["images"][3]["filename"] = "nowhere.png"

    path = _edited(sets["karpathy"], tmp_path, missing)
    assert "image nowhere.png is missing from" in _refused("retrieval", str(path), *images)

    def duplicate(payload: dict[str, list[dict[str, object]]]) -> None:
        payload["images"][1]["id"] = payload["images"][0]["id"]

    path = _edited(sets["coco_captions"], tmp_path, duplicate)
    assert "duplicate image id 0" in _refused("captions", str(path), *images)

    def outside(payload: dict[str, list[dict[str, object]]]) -> None:
        payload["annotations"][0]["bbox"] = [50, 50, 30, 30]

    path = _edited(sets["detection"], tmp_path, outside)
    line = _refused("grounding", str(path), *images)
    assert "annotation 1 box [50, 50, 30, 30] lies outside its 64 x 64 image" in line

    broken = tmp_path / "broken.json"
    broken.write_text('{"questions": [')
    assert "broken.json: malformed JSON" in _refused(
        "vqa", str(broken), str(sets["vqa_annotations"]), *images
    )
