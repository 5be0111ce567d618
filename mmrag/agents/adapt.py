"""Observe and decide again: after each step, what came back may change the rest of the plan.

Only numbers and the first word of an answer are read here (similarities, counts, box scores,
yes/no): a caption or answer is data and nothing written in it can add, drop or point a step.
A revision is a plan like any other: it is validated against the same schema and limits
(``max_steps``), and a step that would repeat one already run with the same arguments is
never proposed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmrag.agents.results import kept_outputs
from mmrag.agents.tools import CountArgs, GroundArgs, Plan, RetrieveArgs, Step, VqaArgs
from mmrag.config import AgentSettings

Output = dict[str, Any]


@dataclass(frozen=True)
class Decision:
    action: str  # what the agent does next, in a few words
    reason: str  # what it saw that made it do so
    # The new rest of the plan (after the step just run); None leaves the plan as it was.
    steps: list[dict[str, Any]] | None = field(default=None)

    def as_trace(self) -> dict[str, str]:
        return {"action": self.action, "reason": self.reason}


def widen(plan: Plan, cursor: int, settings: AgentSettings) -> Decision | None:
    """Before a search whose hits the next step ranks by a count: search more images, since
    the image with the most is rarely among the few that look most like the words."""
    step = plan.steps[cursor]
    after = plan.steps[cursor + 1] if cursor + 1 < len(plan.steps) else None
    if step.tool != "retrieve" or "limit" in step.args or after is None:
        return None
    ranking = after.parsed()
    wanted = settings.rank_retrieve_limit
    if not isinstance(ranking, CountArgs) or ranking.rank == "none" or ranking.on != "hits":
        return None
    if wanted <= settings.retrieve_limit:
        return None
    return Decision(
        f"search {wanted} images, not {settings.retrieve_limit}",
        f"the next step ranks them by the count of {ranking.phrase!r}",
        [{"tool": "retrieve", "args": {**step.args, "limit": wanted}}],
    )


def revise(
    plan: Plan, done: int, outputs: list[list[Output]], settings: AgentSettings
) -> Decision | None:
    """The decision after step ``done`` (0-based) produced ``outputs[done]``, if any."""
    step = plan.steps[done]
    result = outputs[done]
    rest = [s.model_dump() for s in plan.steps[done + 1 :]]
    ran = [s.model_dump() for s in plan.steps[: done + 1]]
    args = step.parsed()
    decision: Decision | None = None
    match args:
        case RetrieveArgs(query=str(query)):
            decision = _after_search(args, query, result, rest, settings)
        case CountArgs() if args.rank != "none" and not rest:
            decision = _after_ranked_count(step, args, result)
        case VqaArgs(keep=str(wanted)):
            kept = len(kept_outputs(step, result))
            decision = Decision(
                f"keep the {kept} of {len(result)} images answering {wanted!r}",
                f"each image was asked {args.question!r}; only the matching ones answer the"
                " question",
            )
        case GroundArgs() if not rest:
            decision = _after_ground(args, result, settings)
    if decision is None or decision.steps is None:
        return decision
    if any(new in ran for new in decision.steps[: len(decision.steps) - len(rest)]):
        return None  # the same step with the same arguments already ran
    return decision


def _after_search(
    args: RetrieveArgs,
    query: str,
    result: list[Output],
    rest: list[dict[str, Any]],
    settings: AgentSettings,
) -> Decision | None:
    best = max((out["score"] for out in result), default=None)
    if best is not None and best >= settings.min_retrieve_score:
        return None
    seen = "no images" if best is None else f"the best similarity was only {best:.2f}"
    again = args.model_dump(exclude_none=True, mode="json")
    if args.match == "image":
        again["match"] = "hybrid"
        action = "search again, with the captions' words too (hybrid)"
    else:
        words = query.split()
        if len(words) < 2:
            return None  # nothing broader to search for: the answer says the evidence is weak
        # The head word alone ("blue triangle" -> "triangle"): broader, and still on topic.
        again["query"] = words[-1]
        action = f"search again, broader: {words[-1]!r}"
    return Decision(
        action,
        f"the search for {query!r} found {seen}",
        [
            {"tool": "retrieve", "args": again},
            *rest,
        ],
    )


def _after_ranked_count(step: Step, args: CountArgs, result: list[Output]) -> Decision | None:
    ranked = kept_outputs(step, result)
    if not ranked or ranked[0]["count"] == 0:
        return None
    first = ranked[0]
    return Decision(
        f"ground {args.phrase!r} in the image with the {args.rank}",
        f"[{first['image_id']}] has the {args.rank} ({first['count']}); boxes show where",
        [{"tool": "ground", "args": {"on": "last", "pick": 1, "phrases": [args.phrase]}}],
    )


def _after_ground(
    args: GroundArgs, result: list[Output], settings: AgentSettings
) -> Decision | None:
    good = [out for out in result if "boxes" in out]
    if not good or any(
        box["score"] >= settings.min_box_score for out in good for box in out["boxes"]
    ):
        return None
    # A detector names kinds ("triangle"), not descriptions ("blue triangle").
    labels = list(dict.fromkeys(phrase.split()[-1] for phrase in args.phrases))
    return Decision(
        f"detect {', '.join(labels)} instead",
        f"grounding found no box for {', '.join(map(repr, args.phrases))} with a score of"
        f" {settings.min_box_score:g} or more",
        # "last" after a grounding: the images it looked at.
        [{"tool": "detect", "args": {"on": "last", "labels": labels}}],
    )
