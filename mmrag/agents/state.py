"""The graph's typed state. Everything in it is plain JSON: the SQLite checkpointer stores
it per thread, so a conversation survives a restart."""

from __future__ import annotations

from typing import Any, TypedDict


class TraceEntry(TypedDict, total=False):
    step: int
    tool: str
    inputs: dict[str, Any]
    image_ids: list[str]
    outputs: list[dict[str, Any]]
    ms: float
    error: str
    note: str
    # What the agent decided after the step, and why (agents/adapt.py): {"action", "reason"}.
    decision: dict[str, str]


class AgentState(TypedDict, total=False):
    # This turn's input.
    question: str
    image_id: str | None
    tenant: str | None  # retrieval sees only this tenant's images (retrieval/tenants.py)
    started: float  # time.time() when the turn began: the total-time limit counts from it
    # The plan and its progress.
    plan: dict[str, Any]  # Plan.model_dump()
    cursor: int  # index of the next step to run
    outputs: list[list[dict[str, Any]]]  # per executed step
    trace: list[TraceEntry]
    tool_calls: int
    stopped: str | None  # why execution stopped early (a limit), if it did
    answer: dict[str, Any]  # Answer.model_dump()
    # Kept across turns of a thread: what "the second one" refers to.
    previous_ids: list[str]
    previous_steps: list[dict[str, Any]]
