"""The LangGraph graph: plan -> tool nodes (one per tool, in the plan's order) -> answer.

After the plan and after every tool node one router, typed with ``Literal``, picks the next
node: the next step's tool, or the answer once the plan is done or a limit stopped it.
Only the declared tools are nodes, so nothing else can ever run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt

from mmrag.agents.adapt import revise, widen
from mmrag.agents.answer import compose
from mmrag.agents.execute import StepRunner, run_within
from mmrag.agents.jobs import JobStarter, proposal, spec_of
from mmrag.agents.llm_composer import LlmComposer, seen_ids
from mmrag.agents.planner import Planner, PlanRequest
from mmrag.agents.regions import retrieved_regions
from mmrag.agents.results import kept_ids
from mmrag.agents.sentences import compose_sentences
from mmrag.agents.state import AgentState, TraceEntry
from mmrag.agents.tools import (
    AGENT_TOOLS,
    AgentTool,
    Plan,
    PlanContext,
    StartJobArgs,
    Step,
    validate_plan,
)
from mmrag.config import AgentSettings
from mmrag.errors import MmragError
from mmrag.services import Services

log = logging.getLogger(__name__)

# The tools' names come from the one shared list; "answer" is the only other node.
NextNode = AgentTool | Literal["answer"]


def route(state: AgentState) -> NextNode:
    """The next node: the next step's tool, or ``answer``."""
    steps = state["plan"]["steps"]
    cursor = state.get("cursor", 0)
    if state.get("stopped") or cursor >= len(steps):
        return "answer"
    tool: AgentTool = steps[cursor]["tool"]
    return tool


def build_graph(
    services: Services,
    planner: Planner,
    settings: AgentSettings,
    checkpointer: BaseCheckpointSaver[Any] | None,
    clock: Callable[[], float] = time.time,
    composer: LlmComposer | None = None,
    job_starter: Callable[[], JobStarter | None] = lambda: None,
) -> CompiledStateGraph[AgentState, None, AgentState, AgentState]:
    """``clock`` is the time the total-time limit is measured in (the turn's ``started``
    comes from the same clock). ``job_starter`` is read when a proposal is confirmed: the
    job service may be attached after the graph is built."""

    def over_time(state: AgentState) -> str | None:
        if clock() - state["started"] > settings.max_seconds:
            return f"stopped: over the time limit of {settings.max_seconds:g} s"
        return None

    def plan_node(state: AgentState) -> AgentState:
        request = PlanRequest(
            question=state["question"],
            has_image=state.get("image_id") is not None,
            previous_ids=tuple(state.get("previous_ids", [])),
            previous_steps=tuple(state.get("previous_steps", [])),
            max_steps=settings.max_steps,
        )
        started = time.perf_counter()
        plan = planner.plan(request)
        took = round((time.perf_counter() - started) * 1000, 2)
        get_stream_writer()({"event": "plan", "data": {**plan.model_dump(), "ms": took}})
        return {
            "plan": plan.model_dump(),
            "cursor": 0,
            "outputs": [],
            "trace": [],
            "tool_calls": 0,
            "stopped": None,
        }

    def tool_node(state: AgentState) -> AgentState:
        plan = Plan.model_validate(state["plan"])
        cursor = state["cursor"]
        widened = widen(plan, cursor, settings) if settings.adaptive else None
        if widened is not None and widened.steps is not None:
            steps = [s.model_dump() for s in plan.steps]
            steps[cursor] = widened.steps[0]
            plan = Plan(steps=[Step.model_validate(s) for s in steps], planner=plan.planner)
        step = plan.steps[cursor]
        outputs = list(state["outputs"])
        trace = list(state["trace"])
        runner = StepRunner(
            services,
            settings,
            state.get("image_id"),
            state.get("previous_ids", []),
            state.get("tenant"),
            retrieved_regions(outputs),
        )
        hits = _latest_hits(plan, outputs)
        last = kept_ids(plan.steps[cursor - 1], outputs[cursor - 1]) if cursor else []
        image_ids = runner.images_for(step, hits, last)
        left = settings.max_tool_calls - state["tool_calls"]
        entry: TraceEntry = {"step": cursor + 1, "tool": step.tool, "inputs": step.args}
        if widened is not None:
            entry["decision"] = widened.as_trace()
        stop = (
            over_time(state)
            or ("stopped: the tool-call limit was reached" if left <= 0 else None)
            or _repeats(entry, image_ids, trace)
        )
        if stop is None and len(image_ids) > left:
            entry["note"] = f"ran on {left} of {len(image_ids)} images (tool-call limit)"
            image_ids = image_ids[:left]
        if stop is not None:
            return {
                "plan": plan.model_dump(),
                "stopped": stop,
                "trace": [*trace, {**entry, "note": stop}],
            }
        entry["image_ids"] = image_ids
        writer = get_stream_writer()
        writer({"event": "tool_start", "data": dict(entry)})
        try:
            result, took, cut = run_within(
                runner, step, image_ids, settings.tool_batch, lambda: over_time(state)
            )
        except MmragError as error:
            log.info("step %d (%s) failed: %s", cursor + 1, step.tool, error.detail)
            failed: TraceEntry = {**entry, "error": error.detail}
            writer({"event": "tool_end", "data": dict(failed)})
            return {
                "plan": plan.model_dump(),
                "stopped": f"{step.tool} failed: {error.detail}",
                "trace": [*trace, failed],
            }
        done: TraceEntry = {**entry, "outputs": result, "ms": took}
        if cut is not None:
            partial = f"ran on {len(result)} of {len(image_ids)} images ({cut})"
            done["note"] = "; ".join(filter(None, [entry.get("note"), partial]))
        revised = plan
        if settings.adaptive and cut is None:
            revised = decide(state, plan, cursor, [*outputs, result], done)
        writer({"event": "tool_end", "data": dict(done)})
        return {
            "plan": revised.model_dump(),
            "cursor": cursor + 1,
            "outputs": [*outputs, result],
            "trace": [*trace, done],
            # One call per image run on (a retrieve is one call, whatever it finds).
            "tool_calls": state["tool_calls"] + (len(result) if image_ids else 1),
            "stopped": cut,
        }

    def decide(
        state: AgentState,
        plan: Plan,
        cursor: int,
        outputs: list[list[dict[str, Any]]],
        done: TraceEntry,
    ) -> Plan:
        """The plan with its rest revised from what step ``cursor`` found; the decision and
        its reason go into the step's trace entry."""
        decision = revise(plan, cursor, outputs, settings)
        if decision is None:
            return plan
        if "decision" in done:  # decided before the step too (widen): both are told
            before = done["decision"]
            done["decision"] = {
                "action": f"{before['action']}; then {decision.action}",
                "reason": f"{before['reason']}; then {decision.reason}",
            }
        else:
            done["decision"] = decision.as_trace()
        if decision.steps is None:
            return plan
        kept = [step.model_dump() for step in plan.steps[: cursor + 1]]
        context = PlanContext(
            state.get("image_id") is not None,
            len(state.get("previous_ids", [])),
            settings.max_steps,
        )
        try:
            revised = validate_plan([*kept, *decision.steps], plan.planner, context)
        except MmragError as error:
            # Over max_steps, typically: the plan stays as it was, and the trace says why.
            done["decision"] = {**done["decision"], "not_done": error.detail}
            return plan
        log.info("step %d: %s (%s)", cursor + 1, decision.action, decision.reason)
        return revised

    def job_node(state: AgentState) -> AgentState:
        """Propose the job and wait for the caller's answer. LangGraph runs this node again
        from its start when the thread is resumed; everything before ``interrupt`` is pure."""
        plan = Plan.model_validate(state["plan"])
        cursor = state["cursor"]
        step = plan.steps[cursor]
        args = step.parsed()
        assert isinstance(args, StartJobArgs)
        image_ids = _latest_hits(plan, state["outputs"])
        entry: TraceEntry = {
            "step": cursor + 1,
            "tool": step.tool,
            "inputs": step.args,
            "image_ids": image_ids,
        }
        stop = over_time(state) or (None if image_ids else "stopped: no images to start a job on")
        if stop is not None:
            return {"stopped": stop, "trace": [*state["trace"], {**entry, "note": stop}]}
        found = proposal(args, image_ids)
        # The graph stops here; the turn's answer asks the caller (agents/agent.py).
        confirmed = interrupt(found)
        outcome: dict[str, Any] = {"started": False, **found}
        if confirmed is True:
            starter = job_starter()
            if starter is None:
                outcome["problem"] = "jobs are not available here"
            else:
                try:
                    outcome = {
                        **outcome,
                        "started": True,
                        "job_id": starter(spec_of(args, image_ids), state.get("tenant")),
                    }
                except MmragError as error:
                    outcome["problem"] = error.detail
        done: TraceEntry = {**entry, "outputs": [outcome]}
        get_stream_writer()({"event": "tool_end", "data": dict(done)})
        return {
            "cursor": cursor + 1,
            "outputs": [*state["outputs"], [outcome]],
            "trace": [*state["trace"], done],
            "tool_calls": state["tool_calls"] + 1,
        }

    def answer_node(state: AgentState) -> AgentState:
        plan = Plan.model_validate(state["plan"])
        ends_in_job = plan.steps[-1].tool == "start_job"
        write = compose_sentences if settings.adaptive or ends_in_job else compose
        answer = write(plan, state["outputs"], settings, state.get("stopped"))
        if composer is not None and settings.adaptive:
            trace = [dict(entry) for entry in state["trace"]]
            answer = composer.compose(state["question"], answer, seen_ids(trace))
        cited = list(dict.fromkeys(citation.image_id for citation in answer.citations))
        return {
            "answer": answer.model_dump(),
            # What "the second one" means next turn; kept when this turn found nothing.
            "previous_ids": cited or state.get("previous_ids", []),
            "previous_steps": [step.model_dump() for step in plan.steps]
            if cited
            else state.get("previous_steps", []),
        }

    builder = StateGraph(AgentState)
    builder.add_node("plan", plan_node)
    for tool in AGENT_TOOLS:
        builder.add_node(tool, job_node if tool == "start_job" else tool_node)
    builder.add_node("answer", answer_node)
    builder.add_edge(START, "plan")
    targets = [*AGENT_TOOLS, "answer"]
    builder.add_conditional_edges("plan", route, targets)
    for tool in AGENT_TOOLS:
        builder.add_conditional_edges(tool, route, targets)
    builder.add_edge("answer", END)
    return builder.compile(checkpointer=checkpointer)


def _repeats(entry: TraceEntry, image_ids: list[str], trace: list[TraceEntry]) -> str | None:
    """Why the step must not run: the same tool, arguments and images ran before (a
    revision loop that would go round forever stops here)."""
    for earlier in trace:
        if (earlier.get("tool"), earlier.get("inputs"), earlier.get("image_ids")) == (
            entry["tool"],
            entry["inputs"],
            image_ids,
        ):
            return f"stopped: step {earlier.get('step')} already ran with the same arguments"
    return None


def _latest_hits(plan: Plan, outputs: list[list[dict[str, Any]]]) -> list[str]:
    for step, result in reversed(list(zip(plan.steps, outputs, strict=False))):
        if step.tool == "retrieve":
            return [output["image_id"] for output in result]
    return []
