"""The VLM trainer on a micro recipe (seconds): batches, labels, determinism, the checkpoint."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

from mmrag.models.fixtures.build import TRAINING_FILE
from mmrag.models.fixtures.shapes import TRAIN_SEEDS, generate_scene
from mmrag.models.fixtures.train_vlm import (
    IGNORE_INDEX,
    build_model,
    build_processor,
    encode_batch,
    forward,
    sample_examples,
    train_vlm,
)
from mmrag.models.fixtures.vlm_recipe import VlmRecipe
from mmrag.models.fixtures.vlm_tasks import Example
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import VisionOptions
from mmrag.models.vlm.llava import LlavaAdapter

MICRO = VlmRecipe(
    vision_cfg={
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    },
    text_cfg={
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    },
    vision_steps=2,
    vision_batch_size=4,
    steps=3,
    batch_size=4,
    warmup_steps=1,
)
# A token per patch and CLIP's class token.
IMAGE_TOKENS = (32 // 8) ** 2 + 1
CPU = VisionOptions(device="cpu", cpu_threads=1, max_new_tokens=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("micro-vlm")
    train_vlm(MICRO, directory, threads=1)
    return directory


def test_examples_are_fresh_training_scenes_of_every_task() -> None:
    recipe = dataclasses.replace(MICRO, batch_size=200)
    scenes, examples = sample_examples(random.Random(0), recipe)
    assert len(scenes) == len(examples) == 200
    assert all(scene.seed in TRAIN_SEEDS for scene in scenes)
    assert len({scene.seed for scene in scenes}) == 200
    assert {example.task for example in examples} == set(recipe.task_weights)


def test_labels_are_the_answer_and_its_eos_only() -> None:
    processor = build_processor(MICRO)
    tokenizer = processor.tokenizer
    scene = generate_scene(TRAIN_SEEDS.start)
    examples = [
        Example("count", "how many shapes are there?", "3"),
        Example("short", "Describe this image in one sentence.", "a red circle and a blue square"),
    ]
    batch = encode_batch(processor, [scene, scene], examples)
    ids, labels = batch["input_ids"], batch["labels"]
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert int((ids[0] == tokenizer.convert_tokens_to_ids("<image>")).sum()) == IMAGE_TOKENS
    supervised = [row[row != IGNORE_INDEX].tolist() for row in labels]
    assert tokenizer.decode(supervised[0]) == " 3</s>"
    assert tokenizer.decode(supervised[1]) == " a red circle and a blue square</s>"
    # Right padding: the shorter answer pads, and padding is neither attended nor learnt.
    pad = batch["attention_mask"][0] == 0
    assert bool(pad.any())
    assert bool((ids[0][pad] == tokenizer.pad_token_id).all())
    assert bool((labels[0][pad] == IGNORE_INDEX).all())
    # The tokenizer lower-cases what it reads.
    unpadded = ids[0][(ids[0] != tokenizer.convert_tokens_to_ids("<image>")) & ~pad]
    assert tokenizer.decode(unpadded) == "<s>user: \nhow many shapes are there? assistant: 3</s>"


def test_forward_loss_is_the_models_own_loss() -> None:
    processor = build_processor(MICRO)
    torch.manual_seed(0)
    model = build_model(MICRO, processor.tokenizer)
    batch = encode_batch(processor, *sample_examples(random.Random(1), MICRO))
    with torch.no_grad():
        expected = model(**batch).loss
        result = forward(model, batch)
    assert torch.allclose(result.language_loss, expected, atol=1e-5)
    hidden = MICRO.text_cfg["hidden_size"]
    assert result.image_tokens.shape == (MICRO.batch_size, IMAGE_TOKENS, hidden)


def test_the_prompt_trained_is_the_prompt_the_adapter_sends(trained: Path) -> None:
    adapter = create_vision_model(f"local:{trained}", CPU)
    assert isinstance(adapter, LlavaAdapter)
    adapter.load()
    scene = generate_scene(TRAIN_SEEDS.start + 1, size=32)
    example = Example("colour", "what colour is the square?", "red")
    sent = adapter.preprocess([scene.image], [example.prompt])
    batch = encode_batch(adapter.processor, [scene], [example])
    prompt_length = sent["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"][0, :prompt_length], sent["input_ids"][0])
    assert torch.allclose(batch["pixel_values"], sent["pixel_values"])


def test_checkpoint_loads_through_the_registry_and_generates(trained: Path) -> None:
    record = json.loads((trained / TRAINING_FILE).read_text())
    assert record["key"] == MICRO.key()
    assert record["recipe"]["steps"] == MICRO.steps
    model = create_vision_model(f"local:{trained}", CPU)
    assert isinstance(model, LlavaAdapter)
    scene = generate_scene(TRAIN_SEEDS.start + 2, size=32)
    captions = model.caption([scene.image, scene.image])
    assert len(captions) == 2
    assert all(isinstance(text, str) for text in captions)
    # No chat template: the adapter falls back on LLaVA-1.5's plain format, as trained.
    assert not model.processor.chat_template


def test_same_recipe_same_weights(tmp_path: Path, trained: Path) -> None:
    weights = "model.safetensors"
    train_vlm(MICRO, tmp_path / "again", threads=1)
    assert (tmp_path / "again" / weights).read_bytes() == (trained / weights).read_bytes()
    train_vlm(dataclasses.replace(MICRO, seed=1), tmp_path / "other", threads=1)
    assert (tmp_path / "other" / weights).read_bytes() != (trained / weights).read_bytes()


def test_training_leaves_threads_and_global_rng_alone(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    train_vlm(MICRO, tmp_path / "model", threads=1 if threads != 1 else 2)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
