"""The adaptive agent's sentences on plain tool outputs: every claim cites its image (and
box), weak evidence is said, the structured citations keep their form."""

from __future__ import annotations

from typing import Any

from mmrag.agents.sentences import compose_sentences, plural
from mmrag.agents.tools import Plan, PlanContext, validate_plan
from mmrag.config import AgentSettings

SETTINGS = AgentSettings()
A, B, C = "a" * 32, "b" * 32, "c" * 32


def plan_of(*steps: tuple[str, dict[str, Any]]) -> Plan:
    raw = [{"tool": tool, "args": args} for tool, args in steps]
    return validate_plan(raw, "test", PlanContext(has_image=True))


def hits(*ids: str, score: float = 0.3) -> list[dict[str, Any]]:
    return [{"image_id": i, "score": score, "caption": ""} for i in ids]


def box(label: str, score: float, *corners: float) -> dict[str, Any]:
    return {"label": label, "score": score, "box": list(corners)}


def test_grounding_over_images_names_the_clearest_first() -> None:
    plan = plan_of(("retrieve", {"query": "x"}), ("ground", {"phrases": ["blue triangle"]}))
    found = [
        {"image_id": A, "boxes": [box("blue triangle", 0.6, 1, 2, 3, 4)]},
        {"image_id": B, "boxes": [box("blue triangle", 0.9, 5, 6, 7, 8)]},
        {"image_id": C, "boxes": [box("blue triangle", 0.1, 0, 0, 1, 1)]},
    ]
    answer = compose_sentences(plan, [hits(A, B, C), found], SETTINGS)
    assert answer.text == (
        f"The blue triangle is in 2 images; the clearest is [{B}] at [5, 6, 7, 8] (score 0.90). "
        f"It is also in [{A}] at [1, 2, 3, 4] (score 0.60)."
    )
    assert [(c.image_id, c.box, c.label) for c in answer.citations] == [
        (B, [5, 6, 7, 8], "blue triangle"),
        (A, [1, 2, 3, 4], "blue triangle"),
    ]
    assert not answer.weak_evidence


def test_a_ranked_count_then_grounding_tells_both() -> None:
    plan = plan_of(
        ("retrieve", {"query": "people"}),
        ("count", {"phrase": "person", "rank": "most"}),
        ("ground", {"on": "last", "pick": 1, "phrases": ["person"]}),
    )
    counts = [
        {"image_id": A, "count": 1, "boxes": []},
        {"image_id": B, "count": 4, "boxes": []},
        {"image_id": C, "count": 1, "boxes": []},
    ]
    grounded = [{"image_id": B, "boxes": [box("person", 0.8, 1, 1, 9, 9)]}]
    answer = compose_sentences(plan, [hits(A, B, C), counts, grounded], SETTINGS)
    assert answer.text == (
        f"[{B}] has the most people: 4. The others have 1 person in [{A}] and [{C}]. "
        f"The person is in [{B}] at [1, 1, 9, 9] (score 0.80)."
    )
    assert [c.image_id for c in answer.citations] == [A, B, C, B]
    assert answer.citations[-1].box == [1, 1, 9, 9]


def test_a_kept_set_and_weak_evidence_are_said() -> None:
    plan = plan_of(
        ("retrieve", {"query": "shelves"}),
        ("vqa", {"question": "Is it empty?", "keep": "yes"}),
    )
    answers = [
        {"image_id": A, "answer": "yes", "answer_score": 0.9},
        {"image_id": B, "answer": "no", "answer_score": 0.9},
    ]
    kept = compose_sentences(plan, [hits(A, B), answers], SETTINGS)
    assert kept.text == f"1 of the 2 images answer 'yes' to \"Is it empty?\": [{A}]."
    assert [c.image_id for c in kept.citations] == [A]
    none = [{**out, "answer": "no"} for out in answers]
    empty = compose_sentences(plan, [hits(A, B, score=0.05), none], SETTINGS)
    assert empty.weak_evidence
    assert empty.text.startswith("The evidence is weak: no image matches 'shelves' closely")
    assert f"None of the 2 images answers 'yes' to \"Is it empty?\" ([{A}] and [{B}]" in empty.text
    assert empty.citations == []


def test_a_search_tried_again_says_so() -> None:
    plan = plan_of(("retrieve", {"query": "red fox"}), ("retrieve", {"query": "fox"}))
    answer = compose_sentences(plan, [hits(A, score=0.05), hits(B)], SETTINGS)
    assert answer.text.startswith("The search for 'red fox' found only weak matches, so I")
    assert f"the closest is [{B}] (similarity 0.30)" in answer.text
    assert [c.image_id for c in answer.citations] == [B]


def test_plurals() -> None:
    assert [plural(w) for w in ("triangle", "box", "person", "berry", "day")] == [
        "triangles", "boxes", "people", "berries", "days"
    ]  # fmt: skip
    assert plural("car", 1) == "car"
