"""The labelled routing set: questions with the plan shape they should get.

The split is fixed in the file. Every split but ``fresh4`` is DEVELOPMENT data: the shipped
planner trains on them (``DEVELOPMENT``), and only cross-validation over them says anything
about new wordings (``mmrag eval routing --split cv``, reported per split). A split written
later stays held out until it is listed there.

``train`` (232 questions, ids ``r...``): the first set; its cue words and rules were written
by people who had read all of it.
``test`` (134, ids ``t...`` and ``u...``): written in review in two batches, each before the
planner was run on it; held out until issue 14, then its misses were read.
``fresh`` (134, ids ``v...``): written for the adaptive agent (issue 14) before any change
for it, in new wordings and with three-step chains; scored blind twice (107/134, then
114/134), then its misses were read, except those of a validation slice of 40 drawn with a
seeded random draw before anything else was written, whose score was taken once at the end
(see the README).
``augment`` (ids ``a...``): written for issue 14 to teach the planner how demanding
users ask (terse keywords, lower case, typos, polite long requests, filters, negations,
another tool's words used without asking for it, Italian, Portuguese and Dutch besides
French, German and Spanish, "more like this", "search X and tell me which ones are Y",
three-step chains, follow-ups); 517 in the first two rounds, then a third block (ids after
``a517``) after fresh2 was run: negations, misspelt tool words, bare follow-ups in seven
languages, superlatives and bounds in seven languages, questions asked of a named part of
the collection, over new objects, places and scenes; a fourth (a939-a971) after fresh3 was
run: "find all X and all Y", searches for every photo of an upload and the other causes of
fresh3's misses, in the seven languages over other scenes. Trained on and cross-validated;
never a held-out figure.

``fresh2`` (174, ids ``w...``): written on 2026-12-06, before any change for it, by someone
who had not read the router's code: terse, chatty, misspelt and polite wordings, filters and
negations, words of one tool in questions for another, a fifth of it in French, German,
Spanish, Italian, Portuguese and Dutch, twelve three-step chains and twelve follow-ups. Held
out and run once, blind (156/174); then it became development data. 40 of its questions,
drawn by ``random.Random(20261207).sample`` over its sorted ids before any change for it,
were left out of every model and unread until the end, then scored once (see the README).

``fresh3`` (193, ids ``x...``): written on 2026-12-07, before any change for it, by someone
who had not read the router's code, in the same form and mix as ``fresh2`` with new scenes
(bakery, greenhouse, zoo, building site, station, ski slope), a fifth of it in French, German,
Spanish, Italian, Portuguese and Dutch, thirteen three-step chains and fifteen follow-ups. Held
out and run once, blind (176/193); then it became development data for the fourth round. 40 of
its questions, drawn by ``random.Random(20261208).sample`` over its sorted ids before any
change for it, were left out of every model and unread until the end, then scored once (see
the README).

``fresh4`` (204, ids ``y...``): written on 2026-12-07, before any change for it, by someone
who had not read the router's code, in the same form and mix with new scenes (hospital ward,
harbour, restaurant kitchen, concert, classroom, parking garage, beach, forest trail, factory
line, office, market stall, airport apron), a quarter of it in French, German, Spanish,
Italian, Portuguese and Dutch, thirteen three-step chains and fifteen follow-ups. It is held
out (NOT in ``DEVELOPMENT``), to be run once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Split = Literal["train", "test", "fresh", "augment", "fresh2", "fresh3", "fresh4"]
SPLITS: tuple[Split, ...] = ("train", "test", "fresh", "augment", "fresh2", "fresh3", "fresh4")
# The splits the shipped planner trains on: listed, not "all of them", so a split added
# later (fresh4) is held out until it is listed here.
DEVELOPMENT: tuple[Split, ...] = ("train", "test", "fresh", "augment", "fresh2", "fresh3")


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


def development() -> list[RoutingExample]:
    """The examples of the development splits, the ones the planner trains on."""
    return [example for example in routing_set() if example.split in DEVELOPMENT]
