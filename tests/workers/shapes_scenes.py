"""Held-out scenes of the synthetic world, indexed for the tool tests."""

from __future__ import annotations

import io
from collections.abc import Callable

from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, ShapeScene, generate_scene
from mmrag.retrieval.items import IngestItem
from mmrag.services import Services


def held_out(count: int, keep: Callable[[ShapeScene], bool] = lambda _: True) -> list[ShapeScene]:
    scenes: list[ShapeScene] = []
    seed = HELD_OUT_SEEDS.start + 5_000  # clear of the scenes the fixture evaluations use
    while len(scenes) < count:
        scene = generate_scene(seed)
        if keep(scene):
            scenes.append(scene)
        seed += 1
    return scenes


def png_of(scene: ShapeScene) -> bytes:
    out = io.BytesIO()
    scene.image.save(out, "PNG")
    return out.getvalue()


def index_scenes(services: Services, scenes: list[ShapeScene]) -> list[str]:
    """Index the scenes (no captions: what the models say is what gets written back)."""
    items = [IngestItem.upload(png_of(scene), f"scene-{scene.seed}.png") for scene in scenes]
    report = services.ingest(items)
    ids = [result.image.image_id for result in report.results if result.image is not None]
    assert len(ids) == len(scenes), report
    return ids
