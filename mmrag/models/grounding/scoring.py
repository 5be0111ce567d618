"""Detectors that score every candidate box against every text in one forward pass (Grounding
DINO, OWLv2/OWL-ViT): grounding and detection are the same selection over those scores."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from PIL import Image

from mmrag.models.base import Tool
from mmrag.models.grounding.adapter import phrase_lists, unique_texts
from mmrag.models.grounding.selection import Scored, detect_boxes, ground_boxes
from mmrag.models.transformers_base import TransformersAdapter
from mmrag.models.vision import Box


class ScoringDetector(TransformersAdapter):
    tools: ClassVar[frozenset[Tool]] = frozenset({"ground", "detect"})
    # A phrase with nothing above the threshold still gets its best box if it scores this much;
    # None: no box then.
    ground_floor: ClassVar[float | None] = None

    def ground(
        self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
    ) -> list[list[Box]]:
        self._require("ground")
        texts = phrase_lists(images, phrases)
        return [
            ground_boxes(
                scored.boxes,
                scored.scores,
                image_texts,
                self.options.box_threshold,
                self.options.max_boxes,
                floor=self.ground_floor,
            )
            for scored, image_texts in zip(self.score(images, texts), texts, strict=True)
        ]

    def detect(self, images: Sequence[Image.Image], vocabulary: Sequence[str]) -> list[list[Box]]:
        self._require("detect")
        labels = unique_texts(vocabulary, "label")
        return [
            detect_boxes(
                scored.boxes,
                scored.scores,
                labels,
                self.options.box_threshold,
                self.options.max_boxes,
            )
            for scored in self.score(images, [labels] * len(images))
        ]

    @abstractmethod
    def score(self, images: Sequence[Image.Image], texts: Sequence[Sequence[str]]) -> list[Scored]:
        """Every candidate box of each image scored against each of that image's texts."""
