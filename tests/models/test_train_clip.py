"""The trainer on a micro recipe (seconds): batches, loss, determinism, the written directory."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrag.models.clip.embedder import EmbedderOptions
from mmrag.models.fixtures.build import TRAINING_FILE
from mmrag.models.fixtures.recipe import DEFAULT_RECIPE, ClipRecipe
from mmrag.models.fixtures.shapes import TRAIN_SEEDS, describes
from mmrag.models.fixtures.train_clip import (
    WEIGHTS_FILE,
    sample_batch,
    soft_contrastive_loss,
    train_clip,
)
from mmrag.models.registry import create_embedder

MICRO = ClipRecipe(
    model_cfg={
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 8,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    },
    steps=3,
    batch_size=8,
    warmup_steps=1,
)


def test_batches_are_fresh_training_scenes_with_a_true_diagonal() -> None:
    batch = sample_batch(random.Random(0), DEFAULT_RECIPE)
    assert len(batch.scenes) == len(batch.captions) == DEFAULT_RECIPE.batch_size
    assert all(scene.seed in TRAIN_SEEDS for scene in batch.scenes)
    assert all(scene.size == DEFAULT_RECIPE.image_size for scene in batch.scenes)
    assert batch.truth.diagonal().all()
    for i, caption in enumerate(batch.captions):
        for j, scene in enumerate(batch.scenes):
            assert batch.truth[i, j] == describes(caption, scene)
    # Both kinds of caption occur: single-shape phrases and whole-scene captions.
    assert {caption.complete for caption in batch.captions} == {True, False}


def test_soft_loss_rewards_every_true_pair_equally() -> None:
    truth = torch.tensor([[True, True, False], [False, True, False], [False, False, True]])
    # Ranking the second true image of text 0 highest costs nothing extra ...
    both_true = torch.tensor([[5.0, 5.0, -5.0], [-5.0, 5.0, -5.0], [-5.0, -5.0, 5.0]])
    # ... while preferring a false image does.
    wrong = torch.tensor([[5.0, 5.0, 5.0], [-5.0, 5.0, -5.0], [-5.0, -5.0, 5.0]])
    assert soft_contrastive_loss(both_true, truth) < soft_contrastive_loss(wrong, truth)
    plain = torch.eye(3, dtype=torch.bool)
    identity_logits = torch.eye(3) * 10
    expected = torch.nn.functional.cross_entropy(identity_logits, torch.arange(3))
    assert torch.isclose(soft_contrastive_loss(identity_logits, plain), expected)


def test_same_recipe_same_weights(tmp_path: Path) -> None:
    train_clip(MICRO, tmp_path / "a", threads=1)
    train_clip(MICRO, tmp_path / "b", threads=1)
    first = (tmp_path / "a" / WEIGHTS_FILE).read_bytes()
    assert first == (tmp_path / "b" / WEIGHTS_FILE).read_bytes()
    train_clip(dataclasses.replace(MICRO, seed=1), tmp_path / "c", threads=1)
    assert first != (tmp_path / "c" / WEIGHTS_FILE).read_bytes()


def test_training_leaves_threads_and_global_rng_alone(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    train_clip(MICRO, tmp_path / "model", threads=1 if threads != 1 else 2)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_written_directory_loads_through_the_registry(tmp_path: Path) -> None:
    result = train_clip(MICRO, tmp_path / "model", threads=1)
    assert result.steps == MICRO.steps
    assert np.isfinite(result.final_loss)
    record = json.loads((tmp_path / "model" / TRAINING_FILE).read_text())
    assert record["key"] == MICRO.key()
    embedder = create_embedder(f"local:{tmp_path / 'model'}", EmbedderOptions(device="cpu"))
    assert embedder.input_size == (32, 32)
    vectors = embedder.embed_texts(["a red circle"])
    assert vectors.shape == (1, 16)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_phrase_fraction_picks_the_caption_kind(fraction: float) -> None:
    recipe = dataclasses.replace(DEFAULT_RECIPE, phrase_fraction=fraction)
    batch = sample_batch(random.Random(3), recipe)
    assert {caption.complete for caption in batch.captions} == {fraction == 0.0}
