"""Embedding-like vectors for the search benches, drawn from a seeded generator.

Uniform random vectors make HNSW recall and filter selectivity unrepresentative: real CLIP
embeddings cluster by subject, and the image and text towers fill two overlapping cones.
So: concepts grouped under topics, Zipf-like popularity (a few concepts common, most rare),
and two modality means about 0.6 cosine apart; an item is its modality's mean plus its
concept plus noise, so a caption lands near its own image and near other items of the concept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DIM = 512
TOPICS = 64
CONCEPTS = 2048
Matrix = npt.NDArray[np.float32]


def unit_rows(rows: npt.NDArray[Any]) -> Matrix:
    unit: Matrix = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return unit


@dataclass(frozen=True)
class ConceptSpace:
    concept_topic: npt.NDArray[np.int64]
    concepts: Matrix
    image_mean: Matrix
    text_mean: Matrix
    popularity: npt.NDArray[np.float64]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> ConceptSpace:
        topic_dirs = unit_rows(rng.normal(size=(TOPICS, DIM)))
        concept_topic = rng.integers(0, TOPICS, CONCEPTS)
        spread = 0.9 * unit_rows(rng.normal(size=(CONCEPTS, DIM)))
        concepts = unit_rows(topic_dirs[concept_topic] + spread)
        image_mean = unit_rows(rng.normal(size=DIM))
        # The two modalities' cones overlap in part: their means are ~0.6 cosine apart.
        text_mean = unit_rows(image_mean + 1.3 * unit_rows(rng.normal(size=DIM)))
        popularity = 1.0 / np.arange(1, CONCEPTS + 1) ** 0.8
        return cls(concept_topic, concepts, image_mean, text_mean, popularity / popularity.sum())

    def pick(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.int64]:
        """``count`` concepts, the common ones more often."""
        return rng.choice(CONCEPTS, size=count, p=self.popularity)

    def embed(
        self, rng: np.random.Generator, mean: Matrix, concept: npt.NDArray[np.int64], noise: float
    ) -> Matrix:
        jitter = unit_rows(rng.normal(size=(len(concept), DIM)))
        return unit_rows(1.1 * mean + self.concepts[concept] + noise * jitter)
