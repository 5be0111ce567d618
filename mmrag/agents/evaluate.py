"""``mmrag eval routing``: plan-shape accuracy of a planner over the routing set, the
confusion between the tools, and plan latency."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmrag.agents.planner import LocalPlanner, Planner, PlanRequest, train
from mmrag.agents.routing_set import RoutingExample
from mmrag.agents.tools import AGENT_TOOLS, AgentTool, InvalidPlan

# A follow-up's previous turn: as many results as the agent's searches return by default
# (``agent.retrieve_limit``, 5: "and the fourth one?" must be answerable), and the tools of
# its labelled shape.
_PREVIOUS_IDS = tuple(str(digit) * 32 for digit in range(5))
_DEFAULT_ARGS: dict[AgentTool, dict[str, Any]] = {
    "retrieve": {"query": "x"},
    "caption": {},
    "vqa": {"question": "what is it?"},
    "ground": {"phrases": ["x"]},
    "detect": {"labels": ["x"]},
    "count": {"phrase": "x"},
}


@dataclass
class RoutingReport:
    total: int = 0
    correct: int = 0
    # (expected shape, planned shape) -> how often
    shapes: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (expected tool, planned tool), position by position: the tool confusion
    tools: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    misses: list[dict[str, str]] = field(default_factory=list)
    # split -> [correct, total]: cross-validation over several splits reports each
    by_split: dict[str, list[int]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        latencies = np.array(self.latencies_ms or [0.0])
        return {
            "total": self.total,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "plan_ms_p50": round(float(np.percentile(latencies, 50)), 3),
            "plan_ms_p99": round(float(np.percentile(latencies, 99)), 3),
            "tool_confusion": {
                f"{expected}->{planned}": count
                for (expected, planned), count in sorted(self.tools.items())
            },
            "by_split": {
                name: {"correct": correct, "total": total}
                for name, (correct, total) in sorted(self.by_split.items())
            },
            "misses": self.misses,
        }


def request_for(example: RoutingExample, max_steps: int = 4) -> PlanRequest:
    previous_steps: tuple[dict[str, Any], ...] = ()
    if example.previous:
        names = example.previous.split(">")
        tools = [tool for name in names for tool in AGENT_TOOLS if tool == name]
        previous_steps = tuple({"tool": tool, "args": _DEFAULT_ARGS[tool]} for tool in tools)
    return PlanRequest(
        question=example.question,
        has_image=example.image,
        previous_ids=_PREVIOUS_IDS if example.previous else (),
        previous_steps=previous_steps,
        max_steps=max_steps,
    )


def evaluate_routing(planner: Planner, examples: Sequence[RoutingExample]) -> RoutingReport:
    report = RoutingReport()
    if examples:
        _planned_shape(planner, examples[0])  # untimed: the local planner trains on first use
    for example in examples:
        started = time.perf_counter()
        shape = _planned_shape(planner, example)
        report.latencies_ms.append((time.perf_counter() - started) * 1000)
        report.total += 1
        report.shapes[(example.expected, shape)] += 1
        expected_tools = example.expected.split(">")
        planned_tools = shape.split(">")
        for position in range(max(len(expected_tools), len(planned_tools))):
            expected = expected_tools[position] if position < len(expected_tools) else "(none)"
            planned = planned_tools[position] if position < len(planned_tools) else "(none)"
            report.tools[(expected, planned)] += 1
        tally = report.by_split.setdefault(example.split, [0, 0])
        tally[1] += 1
        if shape == example.expected:
            report.correct += 1
            tally[0] += 1
        else:
            report.misses.append(
                {"id": example.id, "question": example.question, "expected": example.expected,
                 "planned": shape}
            )  # fmt: skip
    return report


def _planned_shape(planner: Planner, example: RoutingExample) -> str:
    """The plan's shape, or ``(invalid)``: a plan the validator refuses is a miss of its
    question, not the end of the evaluation."""
    try:
        return planner.plan(request_for(example)).shape
    except InvalidPlan:
        return "(invalid)"


def cross_validate(examples: Sequence[RoutingExample], folds: int = 5) -> RoutingReport:
    """Local-planner accuracy with every example held out once: ``folds`` models, each
    trained on the other folds (fold = a hash of the example's id)."""
    report = RoutingReport()
    for fold in range(folds):
        held = [e for e in examples if _fold(e.id, folds) == fold]
        rest = [e for e in examples if _fold(e.id, folds) != fold]
        part = evaluate_routing(LocalPlanner(train(rest)), held)
        report.total += part.total
        report.correct += part.correct
        report.shapes.update(part.shapes)
        report.tools.update(part.tools)
        report.latencies_ms += part.latencies_ms
        report.misses += part.misses
        for name, (correct, total) in part.by_split.items():
            tally = report.by_split.setdefault(name, [0, 0])
            tally[0] += correct
            tally[1] += total
    return report


def _fold(example_id: str, folds: int) -> int:
    return int(hashlib.sha1(example_id.encode()).hexdigest(), 16) % folds
