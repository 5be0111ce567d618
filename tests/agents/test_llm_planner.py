"""The LLM planner against a fake OpenAI-compatible server: a valid plan is used; an unknown
tool, bad arguments, malformed JSON, an HTTP error or a timeout fall back to the local
planner, and nothing invalid is returned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agents.fake_openai import FakeOpenAI, tool_call_reply

from mmrag.agents.llm_planner import FallbackPlanner, LlmPlanner, make_planner
from mmrag.agents.planner import LocalPlanner, PlanRequest
from mmrag.config import AgentSettings, Settings

QUESTION = "is there a bicycle in the images about the harbour?"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def planner_for(server: FakeOpenAI, timeout_s: float = 5.0) -> FallbackPlanner:
    settings = AgentSettings(
        planner="llm",
        llm_url=server.url,
        llm_model="qwen-test",
        llm_api_key="sk-test",
        llm_timeout_s=timeout_s,
    )
    return FallbackPlanner(LlmPlanner(settings), LocalPlanner())


def test_a_valid_tool_call_plan_is_used(server: FakeOpenAI) -> None:
    server.reply = tool_call_reply(
        [
            ("retrieve", '{"query": "harbour", "limit": 3}'),
            ("ground", '{"on": "hits", "phrases": ["bicycle"]}'),
        ]
    )
    plan = planner_for(server).plan(PlanRequest(QUESTION, has_image=False))
    assert plan.planner == "llm"
    assert [(s.tool, s.args) for s in plan.steps] == [
        ("retrieve", {"query": "harbour", "limit": 3}),
        ("ground", {"on": "hits", "phrases": ["bicycle"]}),
    ]
    sent = server.requests[-1]
    assert sent["model"] == "qwen-test"
    assert sent["tool_choice"] == "required"
    assert [tool["function"]["name"] for tool in sent["tools"]] == [
        "retrieve",
        "caption",
        "vqa",
        "ground",
        "detect",
        "count",
        "start_job",
    ]
    assert sent["messages"][0]["role"] == "system"
    assert QUESTION in sent["messages"][1]["content"]
    assert server.headers[-1]["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(
    ("reply", "status", "reason"),
    [
        (tool_call_reply([("read_file", '{"path": "/etc/passwd"}')]), 200, "unknown tool"),
        (tool_call_reply([("retrieve", '{"query": "x", "shell": "ls"}')]), 200, "shell"),
        (tool_call_reply([("caption", '{"on": "image"}')]), 200, "no image was given"),
        (tool_call_reply([("retrieve", '{"query": ')]), 200, "malformed tool call"),
        (tool_call_reply([]), 200, "called no tool"),
        ("{not json", 200, "not JSON"),
        ({"choices": []}, 200, "no message"),
        ({"error": {"message": "overloaded"}}, 503, "HTTP 503"),
    ],
)
def test_a_bad_reply_falls_back_to_the_local_planner(
    server: FakeOpenAI, reply: dict[str, object] | str, status: int, reason: str
) -> None:
    server.reply = reply
    server.status = status
    plan = planner_for(server).plan(PlanRequest(QUESTION, has_image=False))
    assert plan.planner.startswith("local (llm fallback:")
    assert reason in plan.planner
    assert plan.shape == "retrieve>ground"  # the local planner's plan, not the LLM's
    assert len(server.requests) == 1


def test_a_slow_server_falls_back_after_the_timeout(server: FakeOpenAI) -> None:
    server.delay_s = 2.0
    server.reply = tool_call_reply([("retrieve", '{"query": "harbour"}')])
    plan = planner_for(server, timeout_s=0.3).plan(PlanRequest(QUESTION, has_image=False))
    assert "did not answer in time" in plan.planner
    assert plan.shape == "retrieve>ground"


def test_an_unreachable_server_falls_back(server: FakeOpenAI) -> None:
    planner = planner_for(server)
    server.__exit__()
    plan = planner.plan(PlanRequest(QUESTION, has_image=False))
    assert "unreachable" in plan.planner


def test_settings_choose_the_planner(tmp_path: Path) -> None:
    assert isinstance(make_planner(Settings(data_dir=tmp_path)), LocalPlanner)
    chosen = Settings(data_dir=tmp_path, agent={"planner": "llm"})
    assert isinstance(make_planner(chosen), FallbackPlanner)


def test_the_llm_sees_the_previous_turn_as_short_facts(server: FakeOpenAI) -> None:
    server.reply = tool_call_reply([("vqa", '{"on": "previous", "pick": 2, "question": "why?"}')])
    previous = (
        {"tool": "retrieve", "args": {"query": "cars"}},
        {"tool": "count", "args": {"on": "hits", "phrase": "car", "rank": "most", "top": 2}},
    )
    request = PlanRequest(
        "and why is the second one red?",
        has_image=False,
        previous_ids=("0" * 32, "1" * 32),
        previous_steps=previous,
    )
    plan = planner_for(server).plan(request)
    assert plan.planner == "llm"
    user = server.requests[-1]["messages"][1]["content"]
    assert "Results of the previous turn: 2." in user
    assert (
        "Steps of the previous turn: retrieve(query='cars') > "
        "count(on='hits', phrase='car', rank='most', top='2')."
    ) in user
    # Ids stay on this side: the LLM refers to results by rank only.
    assert "0" * 32 not in user
    system = server.requests[-1]["messages"][0]["content"]
    assert 'on="last"' in system
