"""One model on one dataset: its figures, its latency per item and the memory its weights
take (0 for engine-served models: their weights live in the engine)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from PIL import Image

from mmrag.evaluation.datasets import CaptionedImage, DetectionSet, Question
from mmrag.evaluation.metrics import (
    RECALL_AT,
    bleu4,
    box_ap,
    cider_d,
    recall_at,
    vqa_accuracy,
)
from mmrag.models.clip.embedder import EmbedderOptions
from mmrag.models.registry import create_embedder, create_vision_model
from mmrag.models.vision import VisionOptions

T = TypeVar("T")
R = TypeVar("R")
BATCH = 8


@dataclass
class ModelResult:
    spec: str
    metrics: dict[str, float]
    ms_per_item: float
    weights_mb: float
    extra: dict[str, object] = field(default_factory=dict)


def _open(path: object) -> Image.Image:
    with Image.open(str(path)) as image:
        return image.convert("RGB")


def _batched(items: Sequence[T], run: Callable[[Sequence[T]], list[R]]) -> list[R]:
    out: list[R] = []
    for start in range(0, len(items), BATCH):
        out.extend(run(items[start : start + BATCH]))
    return out


def eval_retrieval(
    spec: str, data: Sequence[CaptionedImage], options: EmbedderOptions
) -> ModelResult:
    embedder = create_embedder(spec, options)
    embedder.load()
    texts = [caption for item in data for caption in item.captions]
    owner = [index for index, item in enumerate(data) for _ in item.captions]
    started = time.perf_counter()
    images = embedder.embed_images([_open(item.path) for item in data])
    captions = embedder.embed_texts(texts)
    elapsed = time.perf_counter() - started
    similarity = (captions @ images.T).astype(np.float32)
    text_to_image = recall_at(similarity, [{image} for image in owner])
    wanted: list[set[int]] = [set() for _ in data]
    for text_index, image in enumerate(owner):
        wanted[image].add(text_index)
    image_to_text = recall_at(np.ascontiguousarray(similarity.T), wanted)
    metrics = {f"text->image R@{k}": text_to_image[k] for k in RECALL_AT}
    metrics |= {f"image->text R@{k}": image_to_text[k] for k in RECALL_AT}
    return ModelResult(
        spec,
        metrics,
        1000 * elapsed / (len(data) + len(texts)),
        embedder.memory_bytes() / 2**20,
    )


def eval_captions(spec: str, data: Sequence[CaptionedImage], options: VisionOptions) -> ModelResult:
    model = create_vision_model(spec, options)
    model.load()
    started = time.perf_counter()
    made = _batched(list(data), lambda batch: model.caption([_open(i.path) for i in batch]))
    elapsed = time.perf_counter() - started
    references = [item.captions for item in data]
    metrics = {"BLEU-4": 100 * bleu4(made, references), "CIDEr": 100 * cider_d(made, references)}
    return ModelResult(
        spec,
        metrics,
        1000 * elapsed / len(data),
        model.memory_bytes() / 2**20,
        {"captions": dict(zip((item.key for item in data), made, strict=True))},
    )


def eval_vqa(spec: str, data: Sequence[Question], options: VisionOptions) -> ModelResult:
    model = create_vision_model(spec, options)
    model.load()
    started = time.perf_counter()
    answers = _batched(
        list(data),
        lambda batch: model.answer([_open(q.image) for q in batch], [q.question for q in batch]),
    )
    elapsed = time.perf_counter() - started
    scores = [vqa_accuracy(a.text, q.answers) for a, q in zip(answers, data, strict=True)]
    return ModelResult(
        spec,
        {"VQA accuracy": 100 * sum(scores) / len(scores)},
        1000 * elapsed / len(data),
        model.memory_bytes() / 2**20,
    )


def eval_grounding(spec: str, data: DetectionSet, options: VisionOptions) -> ModelResult:
    """Detection with the dataset's category names as the vocabulary; box AP by COCOeval."""
    model = create_vision_model(spec, options)
    model.load()
    names = {name: key for key, name in data.categories.items()}
    vocabulary = list(names)
    started = time.perf_counter()
    found = _batched(
        list(data.images), lambda batch: model.detect([_open(i.path) for i in batch], vocabulary)
    )
    elapsed = time.perf_counter() - started
    detections = [
        {
            "image_id": image.image_id,
            "category_id": names[box.label],
            "bbox": [box.box[0], box.box[1], box.box[2] - box.box[0], box.box[3] - box.box[1]],
            "score": box.score,
        }
        for image, boxes in zip(data.images, found, strict=True)
        for box in boxes
    ]
    return ModelResult(
        spec,
        box_ap(data.coco, detections),
        1000 * elapsed / len(data.images),
        model.memory_bytes() / 2**20,
    )
