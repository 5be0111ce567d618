"""The shapes-vlm recipe key: cheap to compute, and it moves whenever the recipe does."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from mmrag.models.fixtures import vlm_tasks
from mmrag.models.fixtures.build import FIXTURES
from mmrag.models.fixtures.vlm_recipe import DEFAULT_RECIPE, VlmRecipe


def test_key_is_stable_for_equal_recipes() -> None:
    assert VlmRecipe().key() == DEFAULT_RECIPE.key()
    assert len(DEFAULT_RECIPE.key()) == 16
    assert FIXTURES["shapes-vlm"]().key == DEFAULT_RECIPE.key()


@pytest.mark.parametrize(
    "changed",
    [
        dataclasses.replace(DEFAULT_RECIPE, steps=DEFAULT_RECIPE.steps + 1),
        dataclasses.replace(DEFAULT_RECIPE, seed=1),
        dataclasses.replace(DEFAULT_RECIPE, vision_steps=0),
        dataclasses.replace(DEFAULT_RECIPE, probe_weight=0.0),
        dataclasses.replace(
            DEFAULT_RECIPE, task_weights={**DEFAULT_RECIPE.task_weights, "count": 9.0}
        ),
        dataclasses.replace(DEFAULT_RECIPE, learning_rate=1e-3),
        dataclasses.replace(
            DEFAULT_RECIPE, vision_cfg={**DEFAULT_RECIPE.vision_cfg, "num_hidden_layers": 3}
        ),
        dataclasses.replace(
            DEFAULT_RECIPE, text_cfg={**DEFAULT_RECIPE.text_cfg, "hidden_size": 64}
        ),
    ],
)
def test_key_changes_with_the_recipe(changed: VlmRecipe) -> None:
    assert changed.key() != DEFAULT_RECIPE.key()


def test_key_changes_with_the_language_taught(monkeypatch: pytest.MonkeyPatch) -> None:
    before = DEFAULT_RECIPE.key()
    monkeypatch.setattr(vlm_tasks, "COUNT_QUESTIONS", ("how many?",))
    assert DEFAULT_RECIPE.key() != before


def test_key_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import sys; from mmrag.models.fixtures.train_vlm import fixture; fixture().key; "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
