"""The figures of `mmrag eval`, each against a case worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrag.evaluation.metrics import (
    bleu4,
    box_ap,
    cider_d,
    normalise_answer,
    recall_at,
    vqa_accuracy,
)


def test_recall_at_k() -> None:
    # Three queries over four items. Query 0's item (2) ranks first; query 1's items (0, 3)
    # rank 3rd and 4th; query 2's item (1) ranks 2nd.
    similarity = np.array(
        [[0.1, 0.2, 0.9, 0.3], [0.3, 0.9, 0.5, 0.05], [0.9, 0.8, 0.1, 0.2]], dtype=np.float32
    )
    found = recall_at(similarity, [{2}, {0, 3}, {1}], ks=(1, 2, 3))
    assert found == {1: pytest.approx(100 / 3), 2: pytest.approx(200 / 3), 3: 100.0}


def test_vqa_accuracy_is_min_of_agreeing_humans_over_three() -> None:
    humans = ["Red", "red.", "the red", "blue", "green", "green", "green", "green", "x", "y"]
    assert normalise_answer("The Red!") == "red"
    assert vqa_accuracy("red", humans) == 1.0  # three agree
    assert vqa_accuracy("blue", humans) == pytest.approx(1 / 3)
    assert vqa_accuracy("yellow", humans) == 0.0


def test_bleu4_of_a_hand_counted_pair() -> None:
    # candidate "the cat sat on the mat", reference "the cat sat on a mat": clipped n-gram
    # precisions 5/6, 3/5, 2/4, 1/3; equal lengths, no brevity penalty.
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert bleu4(["the cat sat on the mat"], [["the cat sat on a mat"]]) == pytest.approx(expected)
    assert bleu4(["The cat, sat on a mat."], [["the cat sat on a mat"]]) == pytest.approx(1.0)
    assert bleu4(["a dog"], [["the cat sat on a mat"]]) == 0.0


def test_bleu4_brevity_penalty() -> None:
    # "the cat sat on" against "the cat sat on the mat": every n-gram matches, 4 words
    # against 6: BP = exp(1 - 6/4).
    assert bleu4(["the cat sat on"], [["the cat sat on the mat"]]) == pytest.approx(
        math.exp(1 - 6 / 4)
    )


def test_cider_d_of_a_hand_computed_pair_of_images() -> None:
    # Two images, one reference each, no word shared between them: every n-gram's idf is
    # ln 2. Image 1: "red square" against "red circle": unigram cosine 1/2, no bigram in
    # common, no 3- or 4-grams: 10 * (0.5 + 0 + 0 + 0) / 4 = 1.25. Image 2, exact: unigrams
    # and the bigram 1 each: 10 * 2 / 4 = 5. Mean 3.125.
    found = cider_d(["red square", "blue square"], [["red circle"], ["blue square"]])
    assert found == pytest.approx(3.125)


def test_box_ap() -> None:
    truth = {
        "images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 64, "height": 64}],
        "categories": [{"id": 1, "name": "red circle"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [30, 30, 20, 20]},
        ],
    }
    exact = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [30, 30, 20, 20], "score": 0.8},
    ]
    assert box_ap(truth, exact) == {"AP": 100.0, "AP50": 100.0, "AP75": 100.0}
    # One box found, the other missed: recall stops at 1/2, AP (101-point) is 50.5 / 101.
    half = box_ap(truth, exact[:1])
    assert half["AP50"] == pytest.approx(100 * 51 / 101, abs=0.01)
