"""The grounding fixture's recipe key: stable, sensitive to every field, cheap to compute."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from mmrag.models.fixtures.build import FIXTURES
from mmrag.models.fixtures.grounding_recipe import DEFAULT_GROUNDING_RECIPE, GroundingRecipe
from mmrag.models.fixtures.train_grounding import fixture


def test_the_registered_fixture_keys_on_the_default_recipe() -> None:
    assert FIXTURES["shapes-grounding"]().key == DEFAULT_GROUNDING_RECIPE.key()
    assert fixture().key == GroundingRecipe().key()
    assert len(DEFAULT_GROUNDING_RECIPE.key()) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"steps": DEFAULT_GROUNDING_RECIPE.steps + 1},
        {"seed": 1},
        {"learning_rate": 1e-3},
        {"max_canvas_stretch": 1.5},
        {"box_giou_weight": 1.0},
    ],
)
def test_any_field_changes_the_key(change: dict[str, object]) -> None:
    changed = dataclasses.replace(DEFAULT_GROUNDING_RECIPE, **change)  # type: ignore[arg-type]
    assert changed.key() != DEFAULT_GROUNDING_RECIPE.key()


def test_the_model_config_is_part_of_the_key() -> None:
    config = DEFAULT_GROUNDING_RECIPE.model_cfg
    wider = {**config, "vision_config": {**config["vision_config"], "num_hidden_layers": 3}}
    assert GroundingRecipe(model_cfg=wider).key() != DEFAULT_GROUNDING_RECIPE.key()
    assert GroundingRecipe(model_cfg=dict(config)).key() == DEFAULT_GROUNDING_RECIPE.key()


def test_the_grid_is_the_image_in_patches() -> None:
    recipe = DEFAULT_GROUNDING_RECIPE
    assert recipe.grid_size * recipe.patch_size == recipe.image_size


def test_computing_the_key_imports_no_torch() -> None:
    probe = (
        "import sys\n"
        "from mmrag.models.fixtures.build import FIXTURES\n"
        "FIXTURES['shapes-grounding']().key\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'transformers' not in sys.modules, 'transformers imported'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
