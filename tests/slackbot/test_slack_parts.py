"""The bot's small parts alone: command parsing, the drawn boxes, the seen-store, settings."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.config import SlackSettings
from mmrag.models.fixtures.evaluate_grounding import box_iou
from mmrag.models.fixtures.shapes import generate_scene
from mmrag.slack import commands, render
from mmrag.slack.bot import question_of
from mmrag.slack.boxes import BOX_RGB, DrawnBox, display_scale, draw_boxes
from mmrag.slack.dedupe import SeenStore


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", commands.Help()),
        ("help", commands.Help()),
        ("search  a red circle ", commands.Search("a red circle")),
        ("ask where is the dock?", commands.Ask("where is the dock?")),
        ("status " + "ab" * 16, commands.Status("ab" * 16)),
        ("annotate --caption", commands.Annotate(caption=True)),
        (
            'annotate 5 --detect "person, forklift" --caption',
            commands.Annotate(5, True, ("person", "forklift")),
        ),
    ],
)
def test_commands_parse(text: str, expected: commands.Command) -> None:
    assert commands.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("frobnicate now", "unknown command `frobnicate`"),
        ("search", "`search` needs"),
        ("status 42", "`status` needs a job id"),
        ("annotate", "`annotate` needs `--caption`"),
        ("annotate --last 9999 --caption", "--last` takes 1 to"),
        ("annotate --what", "does not know `--what`"),
        ('annotate --detect "open', "`annotate`:"),
        ("annotate --detect " + "x" * 201, "at most 200 characters"),
    ],
)
def test_bad_commands_get_help_saying_why(text: str, problem: str) -> None:
    parsed = commands.parse(text)
    assert isinstance(parsed, commands.Help)
    assert parsed.problem is not None
    assert problem in parsed.problem


def test_the_mention_is_taken_out_of_the_question() -> None:
    assert question_of("<@U0BOT00001> what is  on <@U0X|bob> this shelf?") == (
        "what is on this shelf?"
    )


def test_a_confirmed_jobs_step_shows_in_the_progress_without_a_start_or_a_time() -> None:
    # Resuming a proposal streams only the start_job step's end: no tool_start, no ms.
    shown = render.progress("Start the job.", [("tool_end", {"tool": "start_job", "step": 2})])
    assert shown.splitlines() == [render.working("Start the job."), "• start_job: done"]
    ran = render.progress(
        "q", [("tool_start", {"tool": "retrieve"}), ("tool_end", {"tool": "retrieve", "ms": 3})]
    )
    assert ran.splitlines()[1:] == ["• retrieve: done in 3 ms"]


def test_boxes_are_drawn_where_the_shapes_are() -> None:
    scene = generate_scene(1_000_000_123)
    boxes = [DrawnBox(s.colour + " " + s.kind, 0.9, s.box) for s in scene.shapes]
    png = draw_boxes(scene.image, boxes[:1])
    drawn = Image.open(io.BytesIO(png)).convert("RGB")
    scale = display_scale(scene.image.width, scene.image.height)
    assert drawn.size == (round(scene.image.width * scale), round(scene.image.height * scale))
    ys, xs = np.nonzero(np.all(np.asarray(drawn) == BOX_RGB, axis=-1))
    found = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    truth = tuple(v * scale for v in scene.shapes[0].box)
    assert box_iou(found, truth) >= 0.9  # type: ignore[arg-type]


def test_large_images_are_shrunk_and_small_ones_enlarged() -> None:
    assert display_scale(64, 64) == 4.0
    assert display_scale(800, 600) == 1.0
    assert display_scale(4000, 3000) == pytest.approx(0.4)


def test_the_seen_store_remembers_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "seen.sqlite"
    store = SeenStore(path)
    assert store.first_time("event:Ev1")
    assert not store.first_time("event:Ev1")
    store.close()
    reopened = SeenStore(path)
    assert not reopened.first_time("event:Ev1")
    assert reopened.first_time("event:Ev2")
    reopened.close()


def test_the_seen_store_forgets_after_the_retry_window(tmp_path: Path) -> None:
    now = [1000.0]
    store = SeenStore(tmp_path / "seen.sqlite", clock=lambda: now[0])
    assert store.first_time("sig:v0=abc")
    now[0] += 3 * 3600
    assert store.first_time("sig:v0=abc")
    store.close()


def test_slack_settings_refuse_half_a_configuration() -> None:
    assert not SlackSettings().enabled
    assert SlackSettings(signing_secret="s", bot_token="xoxb-1").enabled
    assert SlackSettings(signing_secret="s", client_id="1.2", client_secret="c").oauth
    with pytest.raises(ValidationError, match="SIGNING_SECRET is required"):
        SlackSettings(bot_token="xoxb-1")
    with pytest.raises(ValidationError, match="BOT_TOKEN"):
        SlackSettings(signing_secret="s")
    with pytest.raises(ValidationError, match="both"):
        SlackSettings(signing_secret="s", client_id="1.2")
    with pytest.raises(ValidationError, match="SIGNING_SECRET is set but empty"):
        SlackSettings(signing_secret=" ", bot_token="xoxb-1")


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = SlackSettings(signing_secret="sekrit-1", bot_token="xoxb-sekrit-2")
    assert "sekrit" not in repr(settings)
    assert "sekrit" not in str(settings.model_dump())


def test_mmrag_slack_refuses_to_start_without_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("MMRAG_") and name != "MMRAG_FIXTURE_CACHE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    off = runner.invoke(app, ["slack"])
    assert off.exit_code != 0
    assert "MMRAG_SLACK__SIGNING_SECRET" in off.output
    monkeypatch.setenv("MMRAG_SLACK__BOT_TOKEN", "xoxb-do-not-print")
    half = runner.invoke(app, ["slack"])
    assert half.exit_code != 0
    assert "SIGNING_SECRET is required" in half.output
    assert "do-not-print" not in half.output
    monkeypatch.setenv("MMRAG_SLACK__SIGNING_SECRET", "s")
    no_app_token = runner.invoke(app, ["slack"])
    assert "MMRAG_SLACK__APP_TOKEN" in no_app_token.output
