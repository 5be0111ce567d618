"""The answer set's questions and its judge, on plain results (no models)."""

from __future__ import annotations

from typing import Any

from mmrag.agents.answer_set import AnswerQuestion, Verdict, judge, questions, scenes
from mmrag.models.fixtures.vlm_tasks import askable_kinds, colour_answer

WORLD = scenes(30)
IDS = [f"{n:032x}" for n in range(len(WORLD))]


def result(answer: str, *citations: dict[str, Any]) -> dict[str, Any]:
    return {"answer": answer, "citations": list(citations)}


def test_the_set_is_large_varied_and_true_to_the_scenes() -> None:
    items = questions(WORLD)
    assert len(items) >= 150
    assert len({item.id for item in items}) == len(items)
    kinds = {item.kind for item in items}
    assert kinds == {
        *("count", "colour", "shape", "exists", "where", "most", "where-any", "most-then-colour")
    }
    for item in items:
        if item.kind == "colour":
            assert item.image is not None
            scene = WORLD[item.image]
            asked = item.question.removeprefix("what colour is the ").rstrip("?")
            assert asked in askable_kinds(scene)
            assert item.expected["colour"] == colour_answer(scene, asked)


def test_the_judge_reads_numbers_colours_and_boxes_in_either_wording() -> None:
    items = questions(WORLD)
    count = next(i for i in items if i.kind == "count")
    assert count.image is not None
    n = count.expected["count"]
    own = {"image_id": IDS[count.image]}
    plural = count.question.split()[2]
    assert judge(count, result(f"[{IDS[count.image]}] {n} × x", own), WORLD, IDS).answer
    said = f"There are {n} {plural} in [{IDS[count.image]}]."
    assert judge(count, result(said, own), WORLD, IDS) == judge(
        count, result(f"[{IDS[count.image]}] {n} × x", own), WORLD, IDS
    )
    assert not judge(count, result(f"There are {n + 1} {plural}.", own), WORLD, IDS).answer
    # A citation of another image is a wrong citation.
    other = {"image_id": IDS[(count.image + 1) % len(IDS)]}
    assert not judge(count, result(said, other), WORLD, IDS).citations
    where = next(i for i in items if i.kind == "where")
    assert where.image is not None
    colour, kind = where.expected["shape"]
    [truth] = WORLD[where.image].find(colour, kind)
    box = {"image_id": IDS[where.image], "box": list(truth.box), "label": f"{colour} {kind}"}
    assert judge(where, result("found", box), WORLD, IDS) == Verdict(True, True)
    moved = {**box, "box": [v + 40 for v in truth.box]}
    assert judge(where, result("found", moved), WORLD, IDS) == Verdict(False, False)


def test_a_ranked_answer_must_name_an_image_with_the_most() -> None:
    item = next(i for i in questions(WORLD) if i.kind == "most")
    kind = item.expected["kind"]
    counts = [len(scene.find(None, kind)) for scene in WORLD]
    best, worst = counts.index(max(counts)), counts.index(min(counts))
    named = AnswerQuestion(item.id, item.kind, item.question, None, item.expected)
    cite = {"image_id": IDS[best]}
    assert judge(named, result(f"[{IDS[best]}] has the most", cite), WORLD, IDS).answer
    assert not judge(named, result(f"[{IDS[worst]}] has the most", cite), WORLD, IDS).answer
