"""Planners: a question in, a validated :class:`Plan` out. Nothing is executed here.

``LocalPlanner`` (the default) is offline and fast: a linear intent classifier over hashed
n-grams says which tool answers the question, a second one whether the question is about the
collection (then a retrieve step comes first), and argument extraction fills the tools'
arguments. Follow-ups ("and the second one?") reuse the previous turn's tools on one of its
results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from mmrag.agents import arguments, references
from mmrag.agents.cues import asks_for_more_like, cue_flags
from mmrag.agents.intent import LinearClassifier, features
from mmrag.agents.negation import negated_tools
from mmrag.agents.routing_set import RoutingExample, development
from mmrag.agents.scope import collection_scope, question_filter, top_wanted
from mmrag.agents.tools import ROUTED_TOOLS, Plan, PlanContext, validate_plan
from mmrag.errors import InvalidInput


@dataclass(frozen=True)
class PlanRequest:
    question: str
    has_image: bool
    previous_ids: tuple[str, ...] = ()
    previous_steps: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    max_steps: int = 4

    @property
    def context(self) -> PlanContext:
        return PlanContext(self.has_image, len(self.previous_ids), self.max_steps)


def clean_question(question: str, max_chars: int) -> str:
    """The question stripped, or :class:`InvalidInput` when it is blank or too long."""
    stripped = question.strip()
    if not stripped:
        raise InvalidInput("the question is empty")
    if len(stripped) > max_chars:
        raise InvalidInput(f"the question is over {max_chars} characters")
    return stripped


class Planner(Protocol):
    name: str

    def plan(self, request: PlanRequest) -> Plan: ...

    def close(self) -> None:
        """Let go of what the planner holds (the LLM planner's HTTP connections)."""


def _row(question: str, has_image: bool) -> dict[int, float]:
    """The classifiers' features: n-grams and cues of the question, whether an image came,
    and the words of the clause it asks last ("find dogs and tell me what colour ...": the
    tool is decided there, the first clause only picks the images)."""
    flags = ["image" if has_image else "no-image", *cue_flags(question)]
    flags += [f"asked:{word}" for word in arguments.asked_clause_words(question)]
    return features(question, flags)


@dataclass(frozen=True)
class Classifiers:
    intent: LinearClassifier  # the tool that answers: the plan's last step
    corpus: LinearClassifier  # "yes" when the question is about the collection


def train(examples: list[RoutingExample]) -> Classifiers:
    usable = [example for example in examples if example.previous is None]
    rows = [_row(example.question, example.image) for example in usable]
    intents = [example.expected.split(">")[-1] for example in usable]
    corpus = ["yes" if example.expected.startswith("retrieve>") else "no" for example in usable]
    return Classifiers(
        intent=LinearClassifier(ROUTED_TOOLS).fit(rows, intents),
        corpus=LinearClassifier(["yes", "no"]).fit(rows, corpus),
    )


@cache
def default_classifiers() -> Classifiers:
    """Trained once per process on the routing set's development splits (about a second)."""
    return train(development())


class LocalPlanner:
    name = "local"

    def __init__(self, classifiers: Classifiers | None = None) -> None:
        self._classifiers = classifiers

    def close(self) -> None:
        """Nothing to let go of: the classifiers are plain arrays."""

    def plan(self, request: PlanRequest) -> Plan:
        pick = _picked(request)
        if pick is not None and references.is_bare_reference(request.question):
            return validate_plan(_repeat(request, pick), self.name, request.context)
        # "don't count anything, just tell me what it shows": the negated part is read by
        # nothing, and its tools are never planned.
        question, negated = negated_tools(request.question)
        classifiers = self._classifiers or default_classifiers()
        found, rest = question_filter(question)
        # "photos with at least two people" asks for photos: the bound is a filter, and its
        # words ("least") must not make a count of it.
        # So must a bound in another language ("au moins deux chiens"), filter or not.
        unbound = rest if found and "counts" in found else arguments.without_thresholds(question)
        row = _row(unbound, request.has_image)
        # A question about one earlier result asks something of it; a search would drop it.
        refers = pick is not None and not asks_for_more_like(question)
        excluded = {*negated, "retrieve"} if refers else negated
        intent, _ = classifiers.intent.predict(row, exclude=excluded)
        scoped = collection_scope(unbound) if pick is None else None
        if scoped is not None and _asks_of_images(cue_flags(scoped)):
            # "in the warehouse photos, are the shelves empty?", "show me the pallet jack's
            # position in the storage room pictures": a question asked of the images the
            # scope names, decided by what it asks.
            scoped_row = _row(scoped, request.has_image)
            intent, _ = classifiers.intent.predict(scoped_row, exclude={"retrieve", *negated})
        elif scoped is not None and _is_question(scoped):
            # A question without a cue word ("nelle foto del cantiere, gli operai portano il
            # casco?") is still asked of them: the whole question picks the tool.
            intent, _ = classifiers.intent.predict(row, exclude={"retrieve", *negated})
        if pick is not None and intent != "retrieve":
            # A question of its own about one earlier result: "what is the second one doing?"
            asked = references.without_reference(question)
            step = {
                "tool": intent,
                "args": {"on": "previous", "pick": pick, **_tool_args(intent, asked)},
            }
            return validate_plan([step], self.name, request.context)
        # With an image, a negated search ("don't look through my photos") stays on it.
        stay = request.has_image and "retrieve" in negated
        more_like = request.has_image and not stay and asks_for_more_like(question)
        about_corpus = more_like or (
            not stay and (scoped is not None or classifiers.corpus.predict(row)[0] == "yes")
        )
        if more_like and not arguments.asked_clause_words(question):
            # "find more photos like this one" asks for the images, nothing about them.
            intent = "retrieve"
        steps: list[dict[str, Any]] = []
        if intent == "retrieve" or not request.has_image or about_corpus:
            steps.append({"tool": "retrieve", "args": _search(question, more_like)})
        chain = _ranked_chain(question, classifiers, request.has_image)
        if steps and chain:
            steps += chain
        elif steps and (which := arguments.which_ones(question)) is not None:
            # "... and tell me which ones are empty": each image is asked, the ones that
            # answer yes are kept.
            steps.append({"tool": "vqa", "args": {"on": "hits", "question": which, "keep": "yes"}})
        elif intent != "retrieve":
            on = "hits" if steps else "image"
            steps.append({"tool": intent, "args": {"on": on, **_tool_args(intent, question)}})
        return validate_plan(steps, self.name, request.context)


def _search(question: str, more_like: bool) -> dict[str, Any]:
    """The retrieve step's arguments: by example, or by words with the filter the question
    asks for ("photos with at least two people" -> counts of person of 2 or more)."""
    if more_like:
        return {"like": "image"}
    found, rest = question_filter(question)
    search: dict[str, Any] = {"query": arguments.search_text(rest)}
    if found is not None:
        search["filter"] = found
    return search


_PER_IMAGE = ("vqa", "caption", "ground")


def _asks_of_images(flags: list[str]) -> bool:
    """Whether cues say a question is asked of images, not a search: "find me the photo of
    the red car" names a photo to find, "show me the pallet jack's position" asks where."""
    asking = {"cue-vqa", "cue-ground", "cue-count", "cue-detect"} & set(flags)
    return bool(asking) or ("cue-caption" in flags and "cue-retrieve" not in flags)


def _is_question(text: str) -> bool:
    """Whether what is left once a scope is named is a question, not more words to search
    by: "nelle foto del cantiere, gli operai portano il casco?" asks each photo."""
    return text.rstrip().endswith("?") and "cue-retrieve" not in cue_flags(text)


def _ranked_chain(
    question: str, classifiers: Classifiers, has_image: bool
) -> list[dict[str, Any]] | None:
    """Three steps after the search for "the two photos with the most cars, and what colour is
    the biggest car in each" or "caption the picture with the most forklifts": count and rank,
    keep the top ones, then ask each. None when the question ranks nothing (a bound such as
    "at least two" filters, it does not rank) or asks nothing of the top images."""
    parts = arguments.clauses(question)
    ranked = next((i for i, part in enumerate(parts) if arguments.rank_of(part) != "none"), None)
    if ranked is None:
        return None
    if ranked < len(parts) - 1:
        # "which pic has the most balloons? describe that one": the clause after asks.
        asked = parts[-1]
    else:
        # One clause: what is left once the ranking phrase is cut asks, if it names a tool.
        asked = arguments.without_rank(parts[ranked])
        if not {"cue-caption", "cue-vqa", "cue-ground"} & set(cue_flags(asked)):
            return None
    then, _ = classifiers.intent.predict(_row(asked, has_image))
    if then not in _PER_IMAGE:
        return None
    phrase = arguments.count_phrase(parts[ranked])
    count = {
        "on": "hits",
        "phrase": phrase,
        "rank": arguments.rank_of(parts[ranked]),
        "top": top_wanted(parts[ranked]) or 1,
    }
    # "... and where are they?": the counted objects are what to ground.
    args = {"phrases": [phrase]} if then == "ground" else _tool_args(then, question)
    return [{"tool": "count", "args": count}, {"tool": then, "args": {"on": "last", **args}}]


def _picked(request: PlanRequest) -> int | None:
    """The earlier result the question refers to (1-based), if it refers to one."""
    rank = references.ordinal_reference(request.question)
    if rank is None or not request.previous_ids:
        return None
    return len(request.previous_ids) if rank == -1 else rank


def _repeat(request: PlanRequest, pick: int) -> list[dict[str, Any]]:
    """The previous turn's per-image tools, now on the one result referred to; a bare search
    before gets a caption of it."""
    earlier = [step for step in request.previous_steps if step.get("tool") != "retrieve"]
    if not earlier:
        earlier = [{"tool": "caption", "args": {}}]
    return [
        {"tool": step["tool"], "args": {**step.get("args", {}), "on": "previous", "pick": pick}}
        for step in earlier
    ]


def _tool_args(tool: str, question: str) -> dict[str, Any]:
    match tool:
        case "caption":
            detailed = re.search(r"\b(detail|detailed|long|full)\b", question.lower())
            return {"detail": "detailed" if detailed else "short"}
        case "vqa":
            return {"question": arguments.per_image_question(question)[:300]}
        case "ground":
            return {"phrases": [arguments.object_phrase(question)]}
        case "detect":
            return {"labels": arguments.detect_labels(question)}
        case "count":
            return {
                "phrase": arguments.count_phrase(question),
                "rank": arguments.rank_of(question),
            }
    raise AssertionError(f"no arguments for {tool}")  # pragma: no cover
