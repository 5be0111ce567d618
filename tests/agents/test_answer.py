"""The answer composer on plain tool outputs: what it claims, what it cites, when it says
the evidence is weak."""

from __future__ import annotations

from typing import Any

from mmrag.agents.answer import compose
from mmrag.agents.sentences import compose_sentences
from mmrag.agents.tools import Plan, PlanContext, validate_plan
from mmrag.config import AgentSettings

SETTINGS = AgentSettings()
A, B, C = "a" * 32, "b" * 32, "c" * 32


def plan_of(*steps: tuple[str, dict[str, Any]]) -> Plan:
    raw = [{"tool": tool, "args": args} for tool, args in steps]
    return validate_plan(raw, "test", PlanContext(has_image=True))


def test_counting_names_the_image_with_the_most() -> None:
    plan = plan_of(
        ("retrieve", {"query": "people"}), ("count", {"phrase": "person", "rank": "most"})
    )
    hits = [{"image_id": i, "score": 0.3, "caption": ""} for i in (A, B, C)]
    counts = [{"image_id": A, "count": 1}, {"image_id": B, "count": 4}, {"image_id": C, "count": 2}]
    answer = compose(plan, [hits, counts], SETTINGS)
    assert answer.text.splitlines()[0] == f"[{B}] has the most person (4)."
    assert [c.image_id for c in answer.citations] == [A, B, C]
    assert not answer.weak_evidence
    fewest = plan_of(("retrieve", {"query": "x"}), ("count", {"phrase": "x", "rank": "fewest"}))
    assert compose(fewest, [hits, counts], SETTINGS).text.startswith(f"[{A}] has the fewest")


def test_only_confident_boxes_are_claimed_and_cited() -> None:
    plan = plan_of(("ground", {"on": "image", "phrases": ["dog"]}))
    boxes = [
        {"label": "dog", "score": 0.9, "box": [1.0, 2.0, 30.0, 40.0]},
        {"label": "dog", "score": 0.5, "box": [5.0, 5.0, 9.0, 9.0]},
        {"label": "cat", "score": 0.1, "box": [0.0, 0.0, 4.0, 4.0]},
    ]
    answer = compose(plan, [[{"image_id": A, "boxes": boxes}]], SETTINGS)
    assert answer.text == f"[{A}] dog at [1, 2, 30, 40] (score 0.90)"
    [citation] = answer.citations
    assert citation.box == [1.0, 2.0, 30.0, 40.0]
    assert citation.label == "dog"
    nothing = compose(plan, [[{"image_id": A, "boxes": boxes[2:]}]], SETTINGS)
    assert nothing.weak_evidence
    assert nothing.citations == []


def test_unsure_vqa_answers_are_marked_and_make_the_evidence_weak() -> None:
    plan = plan_of(("retrieve", {"query": "dogs"}), ("vqa", {"question": "what colour?"}))
    hits = [{"image_id": i, "score": 0.4, "caption": ""} for i in (A, B)]
    sure = [{"image_id": A, "answer": "red", "answer_score": 0.8}]
    answer = compose(plan, [hits, sure], SETTINGS)
    assert answer.text == f"[{A}] red"
    assert not answer.weak_evidence
    mixed = [*sure, {"image_id": B, "answer": "blue", "answer_score": 0.05}]
    unsure = compose(plan, [hits, mixed], SETTINGS)
    assert unsure.text == f"[{A}] red\n[{B}] blue (unsure: confidence 0.05)"
    assert unsure.weak_evidence
    assert [c.score for c in unsure.citations] == [0.8, 0.05]


def test_failures_and_early_stops_are_said_not_hidden() -> None:
    plan = plan_of(("retrieve", {"query": "x"}), ("vqa", {"question": "what?"}))
    hits = [{"image_id": A, "score": 0.4, "caption": ""}]
    stopped = compose(plan, [hits], SETTINGS, "vqa failed: no worker serves vqa")
    assert stopped.text.startswith("I ran 1 of 2 steps (vqa failed: no worker serves vqa).")
    assert stopped.weak_evidence
    failed = compose(plan, [hits, [{"image_id": A, "error": "image is corrupt"}]], SETTINGS)
    assert f"[{A}] could not be processed: image is corrupt" in failed.text
    assert failed.weak_evidence


def test_both_composers_say_an_early_stop_alike() -> None:
    plan = plan_of(("retrieve", {"query": "x"}), ("vqa", {"question": "what?"}))
    hits = [{"image_id": A, "score": 0.4, "caption": ""}]
    for write in (compose, compose_sentences):
        answer = write(plan, [hits], SETTINGS)
        assert answer.text.startswith("I ran 1 of 2 steps (a limit was reached)."), write
        assert answer.weak_evidence
