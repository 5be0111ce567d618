"""``mmrag ask``, ``mmrag plan`` and ``mmrag eval routing`` in-process (Typer's runner), on a
real store with the fixture models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from workers.shapes_scenes import held_out, png_of

from mmrag.agents.routing_set import development
from mmrag.cli import app
from mmrag.models.fixtures import default_cache_dir
from mmrag.models.fixtures.evaluate_grounding import box_iou

runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_vlm_spec: str) -> Path:
    for name in ("MMRAG_ALLOWED_ROOTS", "MMRAG_PROFILE", "MMRAG_AGENT__PLANNER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MMRAG_MODELS__EMBEDDER", "fixture:shapes-clip")
    monkeypatch.setenv("MMRAG_MODELS__GROUNDING", "fixture:shapes-grounding")
    monkeypatch.setenv("MMRAG_MODELS__VLM", tiny_vlm_spec)
    monkeypatch.setenv("MMRAG_MODELS__CACHE_DIR", str(default_cache_dir()))
    monkeypatch.setenv("MMRAG_MODELS__DEVICE", "cpu")
    return tmp_path


def test_plan_prints_the_plan_as_json(env: Path) -> None:
    result = runner.invoke(app, ["plan", "where is the red car?", "--image"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "steps": [{"tool": "ground", "args": {"on": "image", "phrases": ["red car"]}}],
        "planner": "local",
    }
    blank = runner.invoke(app, ["plan", "   "])
    assert blank.exit_code == 1
    assert blank.output == "error: the question is empty\n"


def test_ask_about_an_image_file_grounds_the_phrase(env: Path) -> None:
    scene = held_out(1, lambda s: bool(s.find("blue", "triangle")))[0]
    image = env / "scene.png"
    image.write_bytes(png_of(scene))
    result = runner.invoke(
        app, ["ask", "where is the blue triangle?", "--image", str(image), "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    [citation] = body["citations"]
    assert box_iou(tuple(citation["box"]), scene.find("blue", "triangle")[0].box) >= 0.5
    plain = runner.invoke(app, ["ask", "where is the blue triangle?", "--image", str(image)])
    assert plain.exit_code == 0, plain.output
    assert f"The blue triangle is in [{citation['image_id']}] at [" in plain.stdout
    assert "plan: ground" in plain.output


def test_ask_refuses_bad_input_in_one_line(env: Path) -> None:
    missing = runner.invoke(app, ["ask", "describe it", "--image", str(env / "nope.png")])
    assert missing.exit_code == 1
    assert missing.output.startswith("error: cannot read")
    assert missing.output.count("\n") == 1
    long = runner.invoke(app, ["ask", "why? " * 4_000])
    assert long.exit_code == 1
    assert long.output == "error: the question is over 2000 characters\n"


def test_eval_routing_reports_accuracy_and_confusion(env: Path) -> None:
    # The default is cross-validation over every split the planner trains on, per split.
    result = runner.invoke(app, ["eval", "routing", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "cv"
    assert report["total"] == len(development())
    assert report["by_split"]["test"]["total"] == 134
    assert report["accuracy"] >= 0.95
    assert report["tool_confusion"]["vqa->vqa"] >= 10
    table = runner.invoke(app, ["eval", "routing", "--split", "train"])
    assert "tool confusion" in table.stdout
    bad = runner.invoke(app, ["eval", "routing", "--split", "everything"])
    assert bad.exit_code == 1
    assert bad.output == (
        "error: unknown split 'everything': use train, test, fresh, augment, fresh2, fresh3,"
        " fresh4, all or cv\n"
    )


def test_eval_answers_compares_the_fixed_plan_and_the_adaptive_agent(env: Path) -> None:
    result = runner.invoke(app, ["eval", "answers", "--scenes", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["scenes"] == 4
    assert report["questions"] >= 20 + 9  # five per scene, nine and more about the collection
    for mode in ("fixed", "adaptive"):
        part = report[mode]
        assert part["total"] == report["questions"]
        assert 0 <= part["answers_right"] <= part["total"]
        assert sum(int(v.split("/")[1]) for v in part["by_kind"].values()) == part["total"]
    # Both wordings are judged: the fixed plan answers most of these right as well.
    assert report["fixed"]["answer_accuracy"] >= 0.6
    assert report["adaptive"]["answer_accuracy"] >= report["fixed"]["answer_accuracy"]
    # The world is built in a temporary store: the configured one is never created.
    assert not (env / "data").exists()
