"""The local planner: routing accuracy on the held-out split, arguments, follow-ups."""

from __future__ import annotations

import time
from functools import cache

import pytest

from mmrag.agents import evaluate
from mmrag.agents.evaluate import RoutingReport, cross_validate, evaluate_routing
from mmrag.agents.planner import LocalPlanner, PlanRequest, train
from mmrag.agents.routing_set import (
    DEVELOPMENT,
    RoutingExample,
    Split,
    development,
    routing_set,
    split,
)
from mmrag.agents.spelling import corrected_word

PLANNER = LocalPlanner()


@cache
def development_folds() -> RoutingReport:
    """5-fold cross-validation over every split the planner trains on: each question is
    planned by a model that never saw it, so the figures say something about new wordings."""
    return cross_validate(development())


def split_accuracy(name: str) -> float:
    correct, total = development_folds().by_split[name]
    return correct / total


def test_the_routing_set_is_large_and_varied() -> None:
    examples = routing_set()
    assert len(examples) >= 200
    assert len({example.id for example in examples}) == len(examples)
    shapes = {example.expected for example in examples}
    assert {"retrieve", "caption", "vqa", "ground", "detect", "count"} <= shapes
    assert sum(">" in shape for shape in shapes) >= 5
    assert {example.lang for example in examples} >= {"en", "fr", "de", "es"}
    assert sum(example.image for example in examples) >= 50
    assert sum(not example.image for example in examples) >= 50
    # The split is fixed in the file; the held-out part is a real part, written apart.
    assert 80 <= len(split("test")) <= len(split("train"))
    assert all(e.id[0] in "tu" for e in split("test"))
    train = {e.question.lower().strip(" ?") for e in split("train")}
    assert not [e.question for e in split("test") if e.question.lower().strip(" ?") in train]


def test_the_fresh_split_is_held_out_and_new() -> None:
    fresh = split("fresh")
    assert len(fresh) >= 100
    assert all(e.id[0] == "v" for e in fresh)
    seen = {e.question.lower().strip(" ?") for e in routing_set() if e.split != "fresh"}
    assert not [e.question for e in fresh if e.question.lower().strip(" ?") in seen]
    assert sum(e.expected.count(">") == 2 for e in fresh) >= 5


def test_the_fresh2_split_was_new_and_is_trained_on() -> None:
    # Written before any change for it and run once, blind; then it became development data.
    # augment was written at the same time by another author who could not see fresh2: six
    # short questions came out the same in both.
    check_blind_split("fresh2", "w", overlap_with_augment=6)
    assert "fresh2" in DEVELOPMENT


def test_the_fresh3_split_was_new_and_is_trained_on() -> None:
    # Written on 2026-12-07 before any change for it and run once, blind (176/193); then it
    # became development data for the fourth round. augment's third block was written at the
    # same time by an author who could not see fresh3: four short follow-ups ("en de
    # tweede?") came out the same in both.
    check_blind_split("fresh3", "x", overlap_with_augment=4)
    assert "fresh3" in DEVELOPMENT


def test_the_fresh4_split_is_held_out_and_new() -> None:
    # Written on 2026-12-07 before any change for it, run once (198/204). augment's
    # fourth-round block was written at the same time by an author who could not see fresh4:
    # one short question ("wat gebeurt er op deze foto?") came out the same in both.
    check_blind_split("fresh4", "y", overlap_with_augment=1)
    assert "fresh4" not in DEVELOPMENT
    assert not [e for e in development() if e.split == "fresh4"]


def check_blind_split(name: Split, id_prefix: str, overlap_with_augment: int) -> None:
    """A split written blind: new, varied, and made of shapes the planner can produce.

    The README reports each one's score with and without the questions it shares with
    augment; no further overlap may creep in.
    """
    written = split(name)
    assert len(written) >= 150
    assert all(e.id[0] == id_prefix for e in written)
    assert len({e.id for e in written}) == len(written)
    assert len({_key(e.question) for e in written}) == len(written)
    seen = {_key(e.question) for e in routing_set() if e.split not in (name, "augment")}
    assert not [e.question for e in written if _key(e.question) in seen]
    augment = {_key(e.question) for e in split("augment")}
    assert len([e for e in written if _key(e.question) in augment]) == overlap_with_augment
    assert sum(e.expected.count(">") == 2 for e in written) >= 10
    follow_ups = [e for e in written if e.previous is not None]
    assert len(follow_ups) >= 10
    # Every label is a shape the other splits hold, so the planner can produce it.
    shapes = {e.expected for e in routing_set() if e.split != name}
    assert {e.expected for e in written} <= shapes
    assert {e.previous for e in follow_ups} <= shapes
    assert not [e.question for e in follow_ups if e.image or ">" in e.expected]


def _key(question: str) -> str:
    # Equal questions up to case and trailing punctuation are the same question.
    return question.lower().strip().rstrip(" ?.!")


def test_the_augment_split_is_new_and_trained_on() -> None:
    augment = split("augment")
    assert len(augment) >= 400
    assert all(e.id[0] == "a" for e in augment)
    # fresh2, fresh3 and fresh4 aside: each written at the same time as a block of augment,
    # unseen, with a few short questions alike (see above).
    seen = {
        e.question.lower().strip(" ?")
        for e in routing_set()
        if e.split not in ("augment", "fresh2", "fresh3", "fresh4")
    }
    assert not [e.question for e in augment if e.question.lower().strip(" ?") in seen]
    assert {e.lang for e in augment} >= {"en", "fr", "de", "es", "it", "pt", "nl"}
    assert sum(e.expected.count(">") == 2 for e in augment) >= 15
    # Only the listed development splits are trained on: a split added later stays held out.
    assert {e.split for e in development()} == set(DEVELOPMENT)


def test_fresh_split_accuracy_does_not_regress() -> None:
    # Scored once, blind, by the fixed-plan planner when the split was written: 107/134
    # (79.9%); once more, blind, after issue 14's first planner changes: 114/134 (85.1%).
    # Then fresh became development data: now each question is planned by a fold model that
    # never saw it (the shipped model trains on it). See the README for the figures.
    assert split_accuracy("fresh") >= 0.95, development_folds().misses


def test_fresh2_split_accuracy_does_not_regress() -> None:
    # Scored once, blind, after issue 14's second round: 156/174 (89.7%), short of the
    # issue's 95%. Now development data: each question is planned by a fold model that never
    # saw it, FRESH2_CV_FLOOR of 174 after the third round (see the README). A planner change
    # may only keep or raise it, and it may never fall under the blind figure.
    correct, total = development_folds().by_split["fresh2"]
    assert total == 174
    assert correct >= max(156, FRESH2_CV_FLOOR), development_folds().misses


# fresh2 cross-validated after the third round (its misses read, the validation slice in).
FRESH2_CV_FLOOR = 173


def test_fresh3_split_accuracy_does_not_regress() -> None:
    # Scored once, blind, after issue 14's third round: 176/193 (91.2%), short of the issue's
    # 95%. Now development data: each question is planned by a fold model that never saw it,
    # FRESH3_CV_FLOOR of 193 after the fourth round (see the README). A planner change may
    # only keep or raise it, and it may never fall under the blind figure.
    correct, total = development_folds().by_split["fresh3"]
    assert total == 193
    assert correct >= max(176, FRESH3_CV_FLOOR), development_folds().misses


# fresh3 cross-validated after the fourth round (its misses read, the validation slice in).
FRESH3_CV_FLOOR = 193


def test_fresh4_split_accuracy_does_not_regress() -> None:
    # Held out (never trained on) and scored once, blind, after issue 14's fourth round:
    # 198/204 (97.1%), over the 95%. A planner change may only keep or raise it.
    report = evaluate_routing(PLANNER, split("fresh4"))
    assert report.total == 204
    assert report.correct >= 198, report.misses


def test_a_follow_up_past_the_last_result_is_a_miss_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With three earlier results, "the fourth one" is a plan the validator refuses: it counts
    # as that question's miss instead of ending the evaluation (as it once did on fresh2).
    monkeypatch.setattr(evaluate, "_PREVIOUS_IDS", ("0" * 32, "1" * 32, "2" * 32))
    example = RoutingExample(
        id="x1", question="ok and the fourth one?", image=False, expected="vqa", lang="en",
        split="train", previous="retrieve>vqa",
    )  # fmt: skip
    report = evaluate_routing(PLANNER, [example])
    assert report.total == 1
    assert report.correct == 0
    assert report.misses[0]["planned"] == "(invalid)"
    # The evaluation's own five are what a default search returns: the same question plans.
    monkeypatch.undo()
    assert evaluate_routing(PLANNER, [example]).correct == 1


def test_held_out_plan_shape_accuracy() -> None:
    # The test split: 128/134 blind in review, 129/134 after issue 14's first changes; now
    # cross-validated like the others.
    assert split_accuracy("test") >= 0.98, development_folds().misses
    report = evaluate_routing(PLANNER, split("test"))
    assert report.as_dict()["plan_ms_p50"] < 20


def test_cross_validation_holds_every_example_out_once() -> None:
    report = development_folds()
    assert report.total == len(development())
    assert sum(total for _, total in report.by_split.values()) == report.total
    # Measured 220/232 (94.8%) on train alone, trained on train alone; with the augment
    # block and the other splits to learn from, train's questions fare better.
    assert split_accuracy("train") >= 0.96, report.misses
    assert report.accuracy >= 0.95, report.misses


def test_an_untrained_planner_is_not_accurate() -> None:
    # The accuracy above comes from training: a model fitted on two examples cannot route.
    few = [e for e in split("train") if e.expected in ("caption", "retrieve")][:2]
    weak = LocalPlanner(train(few))
    assert evaluate_routing(weak, split("test")).accuracy < 0.6


@pytest.mark.parametrize(
    ("question", "image", "steps"),
    [
        ("describe this photo", True, [("caption", {"on": "image", "detail": "short"})]),
        (
            "what is the man holding?",
            True,
            [("vqa", {"on": "image", "question": "What is the man holding?"})],
        ),
        ("where is the red car?", True, [("ground", {"on": "image", "phrases": ["red car"]})]),
        ("show me sunsets over water", False, [("retrieve", {"query": "sunsets water"})]),
        (
            "find photos of dogs and tell me what colour each collar is",
            False,
            [
                ("retrieve", {"query": "dogs"}),
                ("vqa", {"on": "hits", "question": "What colour is the collar?"}),
            ],
        ),
        (
            "which of my photos has the most people?",
            False,
            [
                ("retrieve", {"query": "people"}),
                ("count", {"on": "hits", "phrase": "person", "rank": "most"}),
            ],
        ),
        (
            "is there a bicycle in the images about the harbour?",
            False,
            [
                ("retrieve", {"query": "harbour"}),
                ("ground", {"on": "hits", "phrases": ["bicycle"]}),
            ],
        ),
        (
            "detect cars, people and bikes",
            True,
            [("detect", {"on": "image", "labels": ["car", "person", "bike"]})],
        ),
        # Misspelt question words are not part of the object.
        ("whre are the keys in this pic", True, [("ground", {"on": "image", "phrases": ["keys"]})]),
        (
            "hw many squares r there",
            True,
            [("count", {"on": "image", "phrase": "square", "rank": "none"})],
        ),
        # What to count comes after the rank, not after "find".
        (
            "find the image with the largest number of birds",
            False,
            [
                ("retrieve", {"query": "birds"}),
                ("count", {"on": "hits", "phrase": "bird", "rank": "most"}),
            ],
        ),
        (
            "quelle photo contient le plus de personnes ?",
            False,
            [
                ("retrieve", {"query": "personnes"}),
                ("count", {"on": "hits", "phrase": "personne", "rank": "most"}),
            ],
        ),
        # Each image is asked without the scope that picked it.
        (
            "in the pictures of cars, what colour is each car?",
            False,
            [
                ("retrieve", {"query": "cars"}),
                ("vqa", {"on": "hits", "question": "What colour is the car?"}),
            ],
        ),
        (
            "what is the weather like in each of the beach pictures?",
            False,
            [
                ("retrieve", {"query": "beach"}),
                ("vqa", {"on": "hits", "question": "What is the weather like?"}),
            ],
        ),
        # Nothing specific to detect, in any language or number.
        (
            "run object detection on this photo",
            True,
            [("detect", {"on": "image", "labels": ["object"]})],
        ),
        (
            "détecte tous les objets de cette image",
            True,
            [("detect", {"on": "image", "labels": ["object"]})],
        ),
        # With an image, asking for more like it searches the collection by that image.
        (
            "find photos like this one and count the people in each",
            True,
            [
                ("retrieve", {"like": "image"}),
                ("count", {"on": "hits", "phrase": "person", "rank": "none"}),
            ],
        ),
        (
            "find other photos of this dog and tell me what it is doing in each",
            True,
            [
                ("retrieve", {"like": "image"}),
                ("vqa", {"on": "hits", "question": "What is it doing?"}),
            ],
        ),
    ],
)
def test_questions_get_their_plans_and_arguments(
    question: str, image: bool, steps: list[tuple[str, dict[str, object]]]
) -> None:
    # The examples first, then argument extraction the routing set showed wrong.
    plan = PLANNER.plan(PlanRequest(question, image))
    assert [(step.tool, step.args) for step in plan.steps] == steps
    assert plan.planner == "local"


def test_a_follow_up_reuses_the_previous_tools_on_the_picked_result() -> None:
    previous = (
        {"tool": "retrieve", "args": {"query": "dogs"}},
        {"tool": "vqa", "args": {"on": "hits", "question": "What colour is the collar?"}},
    )
    ids = ("a" * 32, "b" * 32, "c" * 32)
    plan = PLANNER.plan(PlanRequest("and the second one?", False, ids, previous))
    assert [(s.tool, s.args) for s in plan.steps] == [
        ("vqa", {"on": "previous", "pick": 2, "question": "What colour is the collar?"})
    ]
    last = PLANNER.plan(PlanRequest("and the last one?", False, ids, previous))
    assert last.steps[0].args["pick"] == 3
    # A question of its own about an earlier result asks it of that result alone.
    doing = PLANNER.plan(PlanRequest("what is the second one doing?", False, ids, previous))
    assert [(s.tool, s.args) for s in doing.steps] == [
        ("vqa", {"on": "previous", "pick": 2, "question": "What is it doing?"})
    ]
    where = PLANNER.plan(PlanRequest("where is the ball in the last photo?", False, ids, previous))
    assert [(s.tool, s.args) for s in where.steps] == [
        ("ground", {"on": "previous", "pick": 3, "phrases": ["ball"]})
    ]
    # "weather" holds the letters of "the" but refers to nothing.
    weather = PLANNER.plan(PlanRequest("is the weather nice in the first?", False, ids, previous))
    assert weather.steps[0].args["pick"] == 1
    assert PLANNER.plan(PlanRequest("weather first", False, ids, previous)).shape != "vqa"
    # With no earlier results the same words are an ordinary question.
    fresh = PLANNER.plan(PlanRequest("and the second one?", False))
    assert fresh.steps[0].tool == "retrieve"


def test_planning_is_fast() -> None:
    PLANNER.plan(PlanRequest("warm up", False))
    started = time.perf_counter()
    for _ in range(50):
        PLANNER.plan(PlanRequest("where is the blue triangle in the harbour photos?", False))
    assert (time.perf_counter() - started) / 50 < 0.05


@pytest.mark.parametrize(
    ("question", "image", "shape"),
    [
        # A negated tool is never planned; a negated search with an image stays on it.
        ("don't count anything, just tell me what the picture shows", True, "caption"),
        ("ne cherche pas dans mes photos, décris simplement celle-ci", True, "caption"),
        ("find me more like this one, don't describe them", True, "retrieve"),
        # Misspelt tool words are put right.
        ("decsribe this photo", True, "caption"),
        ("whr's the pallet jack", True, "ground"),
        # A superlative ranks, in any of the languages; a bound filters.
        ("caption the picture with the most forklifts", False, "retrieve>count>caption"),
        ("beschreibe das Foto mit den meisten Personen", False, "retrieve>count>caption"),
        ("for the images with at least two people, what are they doing?", False, "retrieve>vqa"),
        ("photos avec au moins deux chiens", False, "retrieve"),
        # A question asked of the images a scope names.
        ("dans les photos de l'entrepôt, les rayons sont-ils vides ?", False, "retrieve>vqa"),
        # A search for photos stays a search: "every", "all the", "trouve-moi" name photos.
        ("show me all the pictures from the harbour upload", False, "retrieve"),
        ("trouve-moi les images du marché aux poissons", False, "retrieve"),
        # Tool verbs of other languages, and "more like this" in them.
        ("encadrez le chien noir", True, "ground"),
        ("was passiert auf diesem Bild?", True, "caption"),
        ("hast du mehr Bilder wie dieses?", True, "retrieve"),
        # A negated question asks nothing; the tool after it is planned.
        ("don't tell me what colour it is, just box the car", True, "ground"),
        # "fewest" ranks like "most"; a ranking with no question after it is a count.
        ("which harbour photo has the fewest boats", False, "retrieve>count"),
    ],
)
def test_negations_typos_ranks_and_scopes(question: str, image: bool, shape: str) -> None:
    assert PLANNER.plan(PlanRequest(question, image)).shape == shape


@pytest.mark.parametrize(
    ("question", "pick"),
    [
        ("same for the last one", 3),
        ("what about number 3", 3),
        ("und beim dritten?", 3),
        ("e la seconda?", 2),
        ("et la 2e ?", 2),
        ("e l'ultima?", 3),
        ("en de tweede?", 2),
    ],
)
def test_bare_references_repeat_the_previous_tool(question: str, pick: int) -> None:
    previous = (
        {"tool": "retrieve", "args": {"query": "x"}},
        {"tool": "count", "args": {"phrase": "box"}},
    )
    ids = ("a" * 32, "b" * 32, "c" * 32)
    plan = PLANNER.plan(PlanRequest(question, False, ids, previous))
    assert [(s.tool, s.args["pick"]) for s in plan.steps] == [("count", pick)]


def test_an_ordinal_of_a_thing_is_no_reference() -> None:
    previous = ({"tool": "retrieve", "args": {"query": "shelves"}},)
    ids = ("a" * 32, "b" * 32, "c" * 32)
    plan = PLANNER.plan(PlanRequest("what is on the second shelf?", False, ids, previous))
    assert "pick" not in plan.steps[-1].args


@pytest.mark.parametrize(
    ("word", "corrected"),
    [
        ("serach", "search"),
        ("decsribe", "describe"),
        # Real words of the seven languages stay, however near a tool word.
        ("direction", "direction"),
        ("counter", "counter"),
        ("procura", "procura"),
        ("chercher", "chercher"),
    ],
)
def test_spelling_corrects_typos_and_keeps_real_words(word: str, corrected: str) -> None:
    assert corrected_word(word) == corrected
