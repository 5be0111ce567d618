"""The labelled routing set: questions with the plan shape they should get.

The split is fixed in the file. ``train`` (232 questions, ids ``r...``) is the development
set: the planner trains on it, and its cue words and rules were written by people who had
read all of it, so only cross-validation over it says anything (and that optimistically).
``test`` (134 questions, ids ``t...`` and ``u...``) was written in review in two batches,
each before the planner was run on it, and is never used to tune anything.
``fresh`` (134 questions, ids ``v...``) was written for the adaptive agent (issue 14) before
any change for it, in new wordings and with three-step chains (``retrieve>count>vqa``: the
two photos with the most cars, then a question about each). It was run on the planner of the
day twice (79.9%, then 85.1% after issue 14's changes) and is now development data.
``fresh2`` (174 questions, ids ``w...``) was written on 2026-12-06, before any change for it,
by someone who had not read the router's code: terse, chatty, misspelt and polite wordings,
filters and negations, words of one tool in questions for another, a fifth of it in French,
German, Spanish, Italian, Portuguese and Dutch, twelve three-step chains and twelve
follow-ups. It is held out, to be run once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Split = Literal["train", "test", "fresh", "fresh2"]
SPLITS: tuple[Split, ...] = ("train", "test", "fresh", "fresh2")


@dataclass(frozen=True)
class RoutingExample:
    id: str
    question: str
    image: bool
    expected: str  # plan shape, "retrieve>vqa"
    lang: str
    split: Split
    previous: str | None = None  # the previous turn's plan shape, for follow-ups


@cache
def routing_set() -> tuple[RoutingExample, ...]:
    text = resources.files("mmrag.agents").joinpath("data/routing_set.jsonl").read_text("utf-8")
    return tuple(RoutingExample(**json.loads(line)) for line in text.splitlines() if line)


def split(name: Split) -> list[RoutingExample]:
    return [example for example in routing_set() if example.split == name]
