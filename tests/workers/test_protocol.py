"""Task messages: validated on both ends, errors carried by name, never as pickles."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mmrag.errors import InvalidInput, MmragError, NotFound, UnsupportedMedia
from mmrag.workers.protocol import (
    ToolItem,
    ToolTask,
    error_result,
    parse_queues,
    raise_if_error,
    rebuild_error,
)

SHA = "ab" * 32


def test_a_task_round_trips_through_json() -> None:
    task = ToolTask(
        tool="ground",
        model="fixture:shapes-grounding",
        items=(ToolItem(sha256=SHA, phrases=("the blue triangle",)),),
    )
    wire = json.dumps(task.model_dump(mode="json"))
    assert ToolTask.model_validate(json.loads(wire)) == task


@pytest.mark.parametrize(
    "fields",
    [
        {"sha256": "not-a-sha"},
        {"sha256": SHA, "question": ""},
        {"sha256": SHA, "question": "   "},
        {"sha256": SHA, "question": "why? " * 2_000},
        {"sha256": SHA, "phrases": ["x"] * 500},
        {"sha256": SHA, "phrases": ["ok", "  "]},
        {"sha256": SHA, "phrases": ["y" * 201]},
        {"sha256": SHA, "detail": "epic"},
        {"sha256": SHA, "surprise": 1},
    ],
)
def test_bad_items_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ToolItem.model_validate(fields)


def test_phrases_are_tidied_and_deduplicated() -> None:
    item = ToolItem(sha256=SHA, phrases=("the  blue\ttriangle", "the blue triangle", "red"))
    assert item.phrases == ("the blue triangle", "red")


def test_each_tool_checks_for_its_arguments() -> None:
    with pytest.raises(InvalidInput, match="vqa needs a question"):
        ToolItem(sha256=SHA).check_for("vqa")
    with pytest.raises(InvalidInput, match="ground needs at least one phrase"):
        ToolItem(sha256=SHA).check_for("ground")
    ToolItem(sha256=SHA).check_for("caption")


def test_a_task_holds_between_one_and_1024_items() -> None:
    with pytest.raises(ValidationError):
        ToolTask(tool="caption", model="fixture:shapes-vlm", items=())


def test_error_envelopes_rebuild_the_domain_error() -> None:
    envelope = error_result(NotFound("no blob"))
    assert envelope == {"error": {"type": "NotFound", "detail": "no blob"}}
    with pytest.raises(NotFound, match="no blob"):
        raise_if_error(envelope)
    assert raise_if_error({"caption": "x"}) == {"caption": "x"}
    assert isinstance(rebuild_error("UnsupportedMedia", "bad"), UnsupportedMedia)


@pytest.mark.parametrize("name", ["os.system", "Exception", "ValueError", "__import__", ""])
def test_only_domain_errors_are_rebuilt_by_name(name: str) -> None:
    rebuilt = rebuild_error(name, "detail")
    assert type(rebuilt) is MmragError
    assert rebuilt.detail == "detail"


def test_queue_names_are_checked() -> None:
    assert parse_queues("vlm, grounding,vlm") == ["vlm", "grounding"]
    with pytest.raises(InvalidInput, match="unknown queue gpu"):
        parse_queues("vlm,gpu")
    with pytest.raises(InvalidInput):
        parse_queues(" , ")
