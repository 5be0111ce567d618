"""The answer set: questions about shapes scenes whose answers the scenes' ground truth
gives (counts, colours, yes/no, where, which image has the most, and chains of steps), and
how a final answer is judged against it.

The scenes come from the held-out seeds, apart from those the fixture models were trained or
evaluated on. Answers are judged on what the agent says and cites, in any of its two
wordings (the fixed plan's lines and the adaptive agent's sentences): the numbers, colours and
yes/no words of the text once image ids and boxes are taken out, and the cited boxes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from mmrag.models.fixtures.evaluate_grounding import box_iou
from mmrag.models.fixtures.shapes import COLOURS, HELD_OUT_SEEDS, KINDS, ShapeScene, generate_scene
from mmrag.models.fixtures.vlm_tasks import (
    askable_colours,
    askable_kinds,
    colour_answer,
    shape_answer,
)

Kind = Literal[
    "count", "colour", "shape", "exists", "where", "most", "where-any", "most-then-colour"
]
# Clear of the seeds the fixture evaluations (start) and the agent tests (start + 5000) use.
FIRST_SEED = HELD_OUT_SEEDS.start + 9_000
_PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
_MIN_IOU = 0.5


@dataclass(frozen=True)
class AnswerQuestion:
    id: str
    kind: Kind
    question: str
    image: int | None  # index of the scene the question is about, if it is given
    # What the truth says: {"count": 2}, {"colour": "red"}, {"answer": "yes"},
    # {"shape": ["blue", "triangle"]}, {"kind": "circle"}, {"kind": ..., "then": "square"}.
    expected: dict[str, Any] = field(default_factory=dict)


def scenes(count: int) -> list[ShapeScene]:
    return [generate_scene(FIRST_SEED + n) for n in range(count)]


def questions(world: list[ShapeScene]) -> list[AnswerQuestion]:
    """Five questions per scene given with it, and about twenty about the whole collection."""
    found: list[AnswerQuestion] = []

    def add(what: Kind, question: str, image: int | None, **expected: Any) -> None:
        found.append(AnswerQuestion(f"a{len(found) + 1:03d}", what, question, image, expected))

    for n, scene in enumerate(world):
        kind = KINDS[n % len(KINDS)]
        add(
            "count",
            f"how many {_PLURAL[kind]} are in this image?",
            n,
            count=len(scene.find(None, kind)),
        )
        askable = askable_kinds(scene)
        asked = askable[n % len(askable)]
        add("colour", f"what colour is the {asked}?", n, colour=colour_answer(scene, asked))
        colours = askable_colours(scene)
        named = colours[n % len(colours)]
        add("shape", f"what shape is the {named} object?", n, shape=shape_answer(scene, named))
        shape = scene.shapes[n % len(scene.shapes)]
        colour = COLOURS[(n + 1) % len(COLOURS)]
        add(
            "exists",
            f"is there a {colour} {shape.kind}?",
            n,
            answer="yes" if scene.has(colour, shape.kind) else "no",
            shape=[colour, shape.kind],
        )
        add(
            "where",
            f"where is the {shape.colour} {shape.kind}?",
            n,
            shape=[shape.colour, shape.kind],
        )
    for kind in KINDS:
        add("most", f"which of my photos has the most {_PLURAL[kind]}?", None, kind=kind)
        for then in KINDS:
            if then != kind:
                add(
                    "most-then-colour",
                    f"which photo has the most {_PLURAL[kind]}, and what colour is the {then}?",
                    None,
                    kind=kind,
                    then=then,
                )
    pairs = sorted({(s.colour, s.kind) for scene in world for s in scene.shapes})
    for colour, kind in pairs:
        add("where-any", f"where is the {colour} {kind}?", None, shape=[colour, kind])
    return found


@dataclass(frozen=True)
class Verdict:
    answer: bool  # the final answer is right
    citations: bool  # every citation is right (and there is one where one is needed)


_ID = re.compile(r"\[([0-9a-f]{32})\]")
_BOX = re.compile(r"\[[-0-9., ]+\]")


def _words(text: str) -> list[str]:
    """The answer's words without image ids, boxes or quoted questions."""
    bare = _BOX.sub(" ", _ID.sub(" ", text))
    bare = re.sub(r'"[^"]*\?"', " ", bare)  # 'Asked "What colour is the square?", ...'
    bare = re.sub(r"\((?:score|similarity|confidence)[^)]*\)", " ", bare)
    return re.findall(r"[a-z0-9]+", bare.lower())


def _count_said(words: list[str]) -> int | None:
    for index, word in enumerate(words):
        if word.isdigit():
            return int(word)
        if word == "no" and index + 1 < len(words) and words[index + 1] in _PLURAL.values():
            return 0
    return None


def judge(
    item: AnswerQuestion,
    result: dict[str, Any],
    world: list[ShapeScene],
    ids: list[str],
) -> Verdict:
    """Whether the agent's ``result`` (the /v1/ask body) answers ``item`` right."""
    by_id = dict(zip(ids, world, strict=True))
    text = str(result["answer"])
    words = _words(text)
    citations = list(result["citations"])
    cited = [c["image_id"] for c in citations]
    expected = item.expected
    image = ids[item.image] if item.image is not None else None
    cites_image = bool(cited) and all(i == image for i in cited)
    match item.kind:
        case "count":
            return Verdict(_count_said(words) == expected["count"], cites_image)
        case "colour":
            said = {w for w in words if w in (*COLOURS, "none")}
            return Verdict(said == {expected["colour"]}, cites_image)
        case "shape":
            said_kinds = {w for w in words if w in (*KINDS, "none")}
            return Verdict(said_kinds == {expected["shape"]}, cites_image)
        case "exists":
            # Said outright (a VQA answer), or shown: "is there a blue circle?" planned as a
            # grounding answers yes with a box on it and no by finding none.
            said = {w for w in words if w in ("yes", "no")}
            colour, kind = expected["shape"]
            phrase = f"{colour} {kind}"
            boxed = [c for c in citations if c.get("label") == phrase]
            shown = any(_box_right(c, by_id, colour, kind) for c in boxed)
            if expected["answer"] == "yes":
                right = said == {"yes"} or (not said and shown)
            else:
                right = said == {"no"} or (not said and not boxed and "could not find" in text)
            return Verdict(right, cites_image)
        case "where" | "where-any":
            colour, kind = expected["shape"]
            boxes = [c for c in citations if c.get("box")]
            good = [c for c in boxes if _box_right(c, by_id, colour, kind)]
            all_good = bool(boxes) and len(good) == len(boxes)
            if item.kind == "where":
                return Verdict(any(c["image_id"] == image for c in good), all_good)
            return Verdict(bool(good), all_good)
        case "most" | "most-then-colour":
            kind = expected["kind"]
            best = max(len(scene.find(None, kind)) for scene in world)
            named = _ID.findall(text)
            if item.kind == "most":
                first = named[0] if named else None
                top = first is not None and len(by_id[first].find(None, kind)) == best
                return Verdict(top, bool(cited) and set(cited) <= set(ids))
            # The chain: the image it settles on is a most-X one, and its colour is right.
            then = expected["then"]
            asked = [i for i in dict.fromkeys(named) if len(by_id[i].find(None, kind)) == best]
            said = {w for w in words if w in (*COLOURS, "none")}
            settled = any(
                then in askable_kinds(by_id[i]) and said == {colour_answer(by_id[i], then)}
                for i in asked
            )
            return Verdict(settled, bool(cited) and set(cited) <= set(ids))
    raise AssertionError(item.kind)  # pragma: no cover


def _box_right(
    citation: dict[str, Any], by_id: dict[str, ShapeScene], colour: str, kind: str
) -> bool:
    scene = by_id.get(citation["image_id"])
    if scene is None:
        return False
    # On the shape asked for: a box of another shape of its kind (a detection's) is wrong.
    truths = scene.find(colour, kind)  # type: ignore[arg-type]
    return any(box_iou(tuple(citation["box"]), t.box) >= _MIN_IOU for t in truths)
