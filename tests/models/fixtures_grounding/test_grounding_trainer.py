"""The grounding trainer on a micro recipe (seconds): the model's forward pass, the losses,
the written directory and what training leaves behind."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from mmrag.models.fixtures.build import TRAINING_FILE
from mmrag.models.fixtures.grounding_data import sample_example, world_queries
from mmrag.models.fixtures.grounding_loss import (
    Predictions,
    Targets,
    cxcywh_to_xyxy,
    generalised_iou,
    grounding_loss,
)
from mmrag.models.fixtures.grounding_recipe import TEXT_POSITIONS, GroundingRecipe
from mmrag.models.fixtures.grounding_trainer import (
    batch_targets,
    build_model,
    build_processor,
    predict,
    train_grounding,
)
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import VisionOptions

if TYPE_CHECKING:
    from transformers import Owlv2Processor

MICRO = GroundingRecipe(
    model_cfg={
        "projection_dim": 32,  # OWL's class head needs it equal to the text width
        "vision_config": {
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        "text_config": {
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": TEXT_POSITIONS,
        },
    },
    steps=3,
    batch_size=4,
    warmup_steps=1,
)


@pytest.fixture(scope="module")
def processor() -> Owlv2Processor:
    built: Owlv2Processor = build_processor(MICRO)
    return built


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("grounding") / "model"
    train_grounding(MICRO, directory, threads=1)
    return directory


def test_predict_is_the_models_forward_with_queries_embedded_once(
    processor: Owlv2Processor,
) -> None:
    model = build_model(MICRO).eval()
    examples = [sample_example(random.Random(seed), MICRO) for seed in range(3)]
    texts = [query.text for query in world_queries()]
    images = [example.image for example in examples]
    inputs = processor(images=images, text=[texts] * 3, return_tensors="pt")
    tokens = processor.tokenizer(texts, padding="max_length", return_tensors="pt")
    with torch.inference_mode():
        reference = model(**inputs)
        ours = predict(model, inputs["pixel_values"], tokens.input_ids, tokens.attention_mask)
    assert torch.allclose(ours.boxes, reference.pred_boxes)
    assert torch.allclose(ours.class_logits, reference.logits, atol=1e-4)
    assert torch.allclose(ours.objectness_logits, reference.objectness_logits)


def test_boxes_start_at_owls_prior_not_saturated(processor: Owlv2Processor) -> None:
    model = build_model(MICRO).eval()
    pixels = processor.image_processor(
        images=[sample_example(random.Random(0), MICRO).image], return_tensors="pt"
    )["pixel_values"]
    tokens = processor.tokenizer(["a red circle"], padding="max_length", return_tensors="pt")
    with torch.inference_mode():
        boxes = predict(model, pixels, tokens.input_ids, tokens.attention_mask).boxes[0]
    grid = MICRO.grid_size
    # Every patch predicts a patch-sized box (sigmoid of the prior), centred on its grid cell.
    assert torch.allclose(boxes[:, 2:], torch.full_like(boxes[:, 2:], 1 / grid), atol=1e-3)
    assert torch.allclose(boxes, torch.sigmoid(model.box_bias), atol=1e-6)


def test_generalised_iou() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [2.0, 0.0, 3.0, 1.0]])
    # Identical: 1. Half overlap: IoU 1/3, enclosing box 6 = union, so 1/3. Apart by one:
    # IoU 0, enclosing 3, union 2, so -1/3.
    assert torch.allclose(generalised_iou(a, b), torch.tensor([1.0, 1 / 3, -1 / 3]), atol=1e-6)


def _two_patches(boxes: torch.Tensor, class_logits: list[float]) -> Predictions:
    """Predictions of two patches, boxes given as ``(cx, cy, w, h)``, one query."""
    return Predictions(
        box_logits=torch.logit(boxes).unsqueeze(0),
        class_logits=torch.tensor(class_logits).reshape(1, 2, 1),
        objectness_logits=torch.zeros(1, 2),
    )


WANTED = torch.tensor([0.5, 0.5, 0.2, 0.2])
TWO_POSITIVES = Targets(
    boxes=torch.stack([WANTED, WANTED]).unsqueeze(0),
    assigned=torch.tensor([[True, True]]),
    classes=torch.tensor([[[True], [True]]]),
)


def test_class_targets_are_the_box_quality_of_each_positive() -> None:
    off = torch.tensor([0.6, 0.5, 0.2, 0.2])  # half a box to the right: IoU 1/3
    boxes = torch.stack([WANTED, off])
    # Scoring each patch by its box's IoU (1 and 1/3, logit -0.69) beats scoring both high:
    # the class head learns to rank the patch with the better box first.
    calibrated = grounding_loss(_two_patches(boxes, [8.0, -0.7]), TWO_POSITIVES)
    confident = grounding_loss(_two_patches(boxes, [8.0, 8.0]), TWO_POSITIVES)
    assert float(calibrated.classes) < float(confident.classes)
    assert float(calibrated.box_giou) == pytest.approx((1 - 1 / 3) / 2, abs=1e-5)
    assert torch.allclose(cxcywh_to_xyxy(WANTED), torch.tensor([0.4, 0.4, 0.6, 0.6]))


def test_box_l1_compares_logits_so_saturated_boxes_still_learn() -> None:
    off = torch.tensor([0.6, 0.5, 0.2, 0.2])
    terms = grounding_loss(_two_patches(torch.stack([WANTED, off]), [0.0, 0.0]), TWO_POSITIVES)
    # One coordinate of eight is off: logit(0.6) - logit(0.5) = log(1.5).
    assert float(terms.box_l1) == pytest.approx(np.log(1.5) / 8, abs=1e-5)
    # A centre stuck at the image edge (OWL's prior for the last column, logit ~9) is far in
    # logits, though only 0.1 away as a box coordinate.
    stuck = torch.tensor([0.9999, 0.5, 0.2, 0.2])
    near_edge = torch.tensor([0.9, 0.5, 0.2, 0.2])
    targets = Targets(
        boxes=torch.stack([near_edge, near_edge]).unsqueeze(0),
        assigned=TWO_POSITIVES.assigned,
        classes=TWO_POSITIVES.classes,
    )
    saturated = grounding_loss(_two_patches(torch.stack([stuck, near_edge]), [0.0, 0.0]), targets)
    assert float(saturated.box_l1) > 0.8  # (9.2 - 2.2) / 8


def test_batch_targets_give_each_shape_patch_its_box() -> None:
    examples = [sample_example(random.Random(seed), MICRO) for seed in range(4)]
    targets = batch_targets(examples, world_queries(), MICRO.grid_size)
    patches = MICRO.grid_size**2
    assert targets.boxes.shape == (4, patches, 4)
    assert targets.classes.shape == (4, patches, len(world_queries()))
    for row, example in enumerate(examples):
        assigned_boxes = {tuple(box) for box in targets.boxes[row][targets.assigned[row]].tolist()}
        expected = {tuple(box) for box in example.normalised_boxes().tolist()}
        assert assigned_boxes == expected  # every shape owns at least one patch
    assert not targets.classes[~targets.assigned].any()


def test_the_written_directory_loads_offline_through_the_registry(trained: Path) -> None:
    record = json.loads((trained / TRAINING_FILE).read_text())
    assert record["key"] == MICRO.key()
    assert np.isfinite(record["final_loss"])
    config = json.loads((trained / "config.json").read_text())
    assert config["model_type"] == "owlv2"
    model = create_vision_model(f"local:{trained}", VisionOptions(device="cpu", cpu_threads=1))
    assert type(model).__name__ == "OwlAdapter"
    [boxes] = model.ground([sample_example(random.Random(1), MICRO).image], [["the red circle"]])
    assert all(box.label == "the red circle" for box in boxes)


def test_same_recipe_same_weights(trained: Path, tmp_path: Path) -> None:
    train_grounding(MICRO, tmp_path / "again", threads=1)
    weights = "model.safetensors"
    assert (trained / weights).read_bytes() == (tmp_path / "again" / weights).read_bytes()


def test_training_leaves_threads_and_global_rng_alone(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    train_grounding(MICRO, tmp_path / "model", threads=1 if threads != 1 else 2)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
