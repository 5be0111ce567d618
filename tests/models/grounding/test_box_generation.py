"""Reading greedy generations: which tokens are the answer, and how sure the model was."""

from __future__ import annotations

import math

import pytest
import torch

from mmrag.models.grounding.generation import read_generations
from mmrag.models.transformers_base import token_ids

STOP = 2


def step(probabilities: list[list[float]]) -> torch.Tensor:
    """Logits whose softmax is exactly ``probabilities`` (one row per sequence)."""
    return torch.tensor([[math.log(p) for p in row] for row in probabilities])


def test_rows_are_cut_after_their_stop_token_and_scored_by_mean_probability() -> None:
    # Vocabulary of 4; two rows with a 2-token context, then 3 generated tokens each.
    sequences = torch.tensor([[9, 9, 1, 2, 3], [9, 8, 3, 3, 2]])
    logits = [
        step([[0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]]),  # row 0 picks 1, row 1 picks 3
        step([[0.1, 0.1, 0.5, 0.3], [0.2, 0.2, 0.2, 0.4]]),  # 2 (stop), 3
        step([[0.25, 0.25, 0.25, 0.25], [0.1, 0.1, 0.8, 0.0001]]),  # after stop: padding; 2
    ]
    first, second = read_generations(sequences, logits, {STOP})
    assert (first.context, first.tokens) == ([9, 9], [1, 2])
    assert first.score == pytest.approx((0.6 + 0.5) / 2, rel=1e-5)
    assert (second.context, second.tokens) == ([9, 8], [3, 3, 2])
    assert second.score == pytest.approx((0.7 + 0.4 + 0.8) / 3, rel=1e-4)


def test_a_row_that_never_stops_keeps_every_token() -> None:
    sequences = torch.tensor([[5, 1, 1]])
    logits = [step([[0.5, 0.5]]), step([[0.5, 0.5]])]
    (generation,) = read_generations(sequences, logits, {STOP})
    assert (generation.context, generation.tokens) == ([5], [1, 1])
    assert generation.score == pytest.approx(0.5)


def test_nothing_generated_has_no_score() -> None:
    (generation,) = read_generations(torch.tensor([[5, 6]]), [], {STOP})
    assert (generation.context, generation.tokens, generation.score) == ([5, 6], [], None)


@pytest.mark.parametrize(("value", "expected"), [(None, set()), (2, {2}), ([2, 7], {2, 7})])
def test_token_id_fields_read_as_sets(value: int | list[int] | None, expected: set[int]) -> None:
    assert token_ids(value) == expected
