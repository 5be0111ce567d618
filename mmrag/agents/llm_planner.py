"""The LLM planner: an OpenAI-compatible ``/chat/completions`` endpoint with tool calling
(vLLM, Ollama, a hosted API) proposes the plan; the tool schemas validate it.

Anything wrong with the answer (no reply in time, HTTP errors, malformed JSON, an unknown
tool, bad arguments) makes :class:`FallbackPlanner` plan with the local planner instead: an
invalid plan never runs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from mmrag.agents.llm_http import chat_client
from mmrag.agents.planner import LocalPlanner, Planner, PlanRequest
from mmrag.agents.prompts import SYSTEM, USER
from mmrag.agents.tools import TOOLS, Plan, validate_plan
from mmrag.config import AgentSettings, Settings
from mmrag.errors import InvalidInput

log = logging.getLogger(__name__)


class PlannerFailed(Exception):
    """The LLM gave no usable plan; the reason is one line."""


class LlmPlanner:
    name = "llm"

    def __init__(self, settings: AgentSettings, transport: httpx.BaseTransport | None = None):
        self._settings = settings
        self._client = chat_client(settings, transport)

    def close(self) -> None:
        self._client.close()

    def plan(self, request: PlanRequest) -> Plan:
        body = {
            "model": self._settings.llm_model,
            "temperature": 0,
            "tool_choice": "required",
            "tools": [spec.json_schema() for spec in TOOLS],
            "messages": [
                {"role": "system", "content": SYSTEM.format(max_steps=request.max_steps)},
                {
                    "role": "user",
                    "content": USER.format(
                        question=request.question,
                        has_image="yes" if request.has_image else "no",
                        previous=len(request.previous_ids) or "none",
                        previous_steps=conversation_facts(request.previous_steps),
                    ),
                },
            ],
        }
        try:
            response = self._client.post("/chat/completions", json=body)
            response.raise_for_status()
            reply = response.json()
        except httpx.TimeoutException:
            raise PlannerFailed("the LLM did not answer in time") from None
        except httpx.HTTPStatusError as error:
            raise PlannerFailed(f"the LLM answered HTTP {error.response.status_code}") from None
        except httpx.HTTPError as error:
            raise PlannerFailed(f"the LLM is unreachable: {type(error).__name__}") from None
        except ValueError:
            raise PlannerFailed("the LLM's reply is not JSON") from None
        steps = _steps_of(reply)
        try:
            return validate_plan(steps, self.name, request.context)
        except InvalidInput as error:
            raise PlannerFailed(f"the LLM's plan is invalid: {error.detail}") from None


def conversation_facts(steps: Any) -> str:
    """The previous turn's steps as short facts, ``retrieve(query='cars') > count(...)``: the
    tools and the arguments its plan gave them. Never outputs (captions, answers): those are
    the index's words, and would reach the LLM as if they were the user's."""
    if not steps:
        return "none"
    facts = []
    for step in list(steps)[:16]:
        args = ", ".join(
            f"{key}={str(value)[:60]!r}" for key, value in dict(step.get("args", {})).items()
        )
        facts.append(f"{step.get('tool')}({args})")
    return " > ".join(facts)


def _steps_of(reply: Any) -> list[dict[str, Any]]:
    try:
        calls = reply["choices"][0]["message"].get("tool_calls") or []
    except (KeyError, IndexError, TypeError, AttributeError):
        raise PlannerFailed("the LLM's reply has no message") from None
    if not isinstance(calls, list) or not calls:
        raise PlannerFailed("the LLM called no tool")
    steps = []
    for call in calls:
        try:
            function = call["function"]
            name = function["name"]
            arguments = json.loads(function.get("arguments") or "{}")
        except (KeyError, TypeError, json.JSONDecodeError):
            raise PlannerFailed("the LLM sent a malformed tool call") from None
        steps.append({"tool": name, "args": arguments})
    return steps


class FallbackPlanner:
    """The LLM's plan when it is valid, else the local planner's (the trace says which)."""

    def __init__(self, primary: LlmPlanner, fallback: Planner) -> None:
        self._primary = primary
        self._fallback = fallback
        self.name = primary.name

    def close(self) -> None:
        self._primary.close()
        self._fallback.close()

    def plan(self, request: PlanRequest) -> Plan:
        try:
            return self._primary.plan(request)
        except PlannerFailed as error:
            log.warning("LLM planner failed, planning locally: %s", error)
            plan = self._fallback.plan(request)
            return plan.model_copy(update={"planner": f"local (llm fallback: {error})"})


def make_planner(settings: Settings) -> Planner:
    if settings.agent.planner == "llm":
        return FallbackPlanner(LlmPlanner(settings.agent), LocalPlanner())
    return LocalPlanner()
