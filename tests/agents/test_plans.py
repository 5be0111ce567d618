"""Plans are validated against the one shared tool list before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from mmrag.agents.tools import TOOLS, InvalidPlan, PlanContext, validate_plan

NO_IMAGE = PlanContext(has_image=False)


def test_every_tool_has_an_openai_schema() -> None:
    names = [spec.json_schema()["function"]["name"] for spec in TOOLS]
    assert names == ["retrieve", "caption", "vqa", "ground", "detect", "count", "start_job"]
    ground = TOOLS[3].json_schema()["function"]["parameters"]
    assert ground["required"] == ["phrases"]
    assert ground["additionalProperties"] is False


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        ([{"tool": "start_job", "args": {"task": "caption"}}], "needs a retrieve step before"),
        (
            [
                {"tool": "retrieve", "args": {"query": "x"}},
                {"tool": "start_job", "args": {"task": "caption"}},
                {"tool": "caption", "args": {}},
            ],
            "must be the last step",
        ),
        (
            [
                {"tool": "retrieve", "args": {"query": "x"}},
                {"tool": "start_job", "args": {"task": "detect"}},
            ],
            "labels go with detect",
        ),
    ],
)
def test_a_job_is_proposed_last_over_retrieved_images(
    steps: list[dict[str, Any]], reason: str
) -> None:
    with pytest.raises(InvalidPlan, match=reason):
        validate_plan(steps, "test", PlanContext(has_image=False))


def test_a_valid_plan_is_normalised() -> None:
    plan = validate_plan(
        [
            {"tool": "retrieve", "args": {"query": "  red   car "}},
            {"tool": "ground", "args": {"phrases": ["car", " car"]}},
        ],
        "test",
        NO_IMAGE,
    )
    assert plan.shape == "retrieve>ground"
    assert plan.steps[0].args == {"query": "red car"}
    assert plan.steps[1].args == {"on": "hits", "phrases": ["car"]}


@pytest.mark.parametrize(
    ("steps", "context", "message"),
    [
        ([], NO_IMAGE, "at least one step"),
        ("rm -rf /", NO_IMAGE, "at least one step"),
        ([{"tool": "read_file", "args": {"path": "/etc/passwd"}}], NO_IMAGE, "unknown tool"),
        ([{"tool": "retrieve", "args": {"query": "x", "path": "/etc"}}], NO_IMAGE, "path"),
        ([{"tool": "retrieve", "args": {"query": "   "}}], NO_IMAGE, "blank"),
        ([{"tool": "vqa", "args": {"question": "q" * 301}}], NO_IMAGE, "question"),
        ([{"tool": "ground", "args": {"phrases": []}}], NO_IMAGE, "phrases"),
        ([{"tool": "ground", "args": {"phrases": ["x"] * 9}}], NO_IMAGE, "phrases"),
        ([{"tool": "caption", "args": {"on": "image"}}], NO_IMAGE, "no image was given"),
        ([{"tool": "caption", "args": {"on": "hits"}}], NO_IMAGE, "no retrieve step"),
        ([{"tool": "caption", "args": {"on": "previous"}}], NO_IMAGE, "there are none"),
        (
            [{"tool": "caption", "args": {"on": "previous", "pick": 4}}],
            PlanContext(False, previous=3),
            "only 3 earlier",
        ),
        ([{"tool": "caption", "args": {"image_id": "0" * 32}}], NO_IMAGE, "image_id"),
        ([{"tool": "retrieve", "args": {"query": "x"}}] * 5, NO_IMAGE, "at most 4 steps"),
        (["retrieve"], NO_IMAGE, "not an object"),
        ([{"tool": "retrieve", "args": {}}], NO_IMAGE, "either query or like"),
        (
            [{"tool": "retrieve", "args": {"query": "x", "like": "image"}}],
            PlanContext(True),
            "either query or like",
        ),
        ([{"tool": "retrieve", "args": {"like": "image"}}], NO_IMAGE, "none was given"),
        ([{"tool": "retrieve", "args": {"like": "/etc/passwd"}}], PlanContext(True), "like"),
    ],
)
def test_bad_plans_are_refused(steps: Any, context: PlanContext, message: str) -> None:
    with pytest.raises(InvalidPlan, match=message):
        validate_plan(steps, "test", context)
