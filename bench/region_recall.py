"""Text->image recall with image vectors alone, region vectors alone, and both fused, one run.

The test set is held out from everything the fixture models trained on (seeds past
``HELD_OUT_SEEDS.start + 20_000``) and built from the shapes world, several objects a scene:

- ``scenes``: the world's own 64 px scenes with exactly three shapes;
- ``mosaic``: 128 px images of four single-shape scenes side by side (four small objects);
- ``sparse``: 192 px images, three single-shape scenes in random cells of a 3 x 3 grid and
  background elsewhere (three objects, each small in the whole image).

``--block`` picks another disjoint block of those seeds (tune on one, check on another).
Each query names one object ("a red circle") of a scene; the relevant images are those that
hold that colour and kind. recall@k = relevant images in the top k / min(k, relevant images),
averaged over queries (one per object of every scene). The service runs in-process on the
fixture CLIP and grounding models, as ``mmrag serve`` would: images are ingested, detection
runs over the twelve phrases of the world (``--boxes detector``; ``truth`` writes the scenes'
true boxes instead, the ceiling of a perfect detector), its write-back crops and embeds the
boxes, then the same text queries go to ``target`` image, region and hybrid (image + regions
fused with RRF, region arm weighted by each ``--weights``).

    .venv/bin/python -m bench.region_recall --scenes 200 --layout sparse --block 1
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from bench.common import emit
from mmrag.config import Settings
from mmrag.models.fixtures.shapes import (
    COLOURS,
    HELD_OUT_SEEDS,
    KINDS,
    generate_scene,
)
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.search import SearchQuery, SearchService, SearchTarget
from mmrag.services import Services
from mmrag.workers.client import ImageRequest

FIRST_SEED = HELD_OUT_SEEDS.start + 20_000
PHRASES = [f"{colour} {kind}" for colour in COLOURS for kind in KINDS]
Box = tuple[float, float, float, float]
Object = tuple[str, Box]  # phrase, true box


def scenes_layout(count: int, block: int) -> list[tuple[Image.Image, list[Object]]]:
    built: list[tuple[Image.Image, list[Object]]] = []
    seed = FIRST_SEED + block * 1_000_000
    while len(built) < count:
        scene = generate_scene(seed)
        seed += 1
        if len(scene.shapes) == 3:
            objects = [(shape.phrase, tuple(map(float, shape.box))) for shape in scene.shapes]
            built.append((scene.image, objects))  # type: ignore[arg-type]
    return built


def mosaic_layout(count: int, block: int) -> list[tuple[Image.Image, list[Object]]]:
    built: list[tuple[Image.Image, list[Object]]] = []
    seed = FIRST_SEED + block * 1_000_000 + 500_000
    for _ in range(count):
        canvas = Image.new("RGB", (128, 128))
        objects: list[Object] = []
        for quadrant in range(4):
            scene = generate_scene(seed, max_shapes=1)
            seed += 1
            dx, dy = 64 * (quadrant % 2), 64 * (quadrant // 2)
            canvas.paste(scene.image, (dx, dy))
            x1, y1, x2, y2 = scene.shapes[0].box
            objects.append((scene.shapes[0].phrase, (x1 + dx, y1 + dy, x2 + dx, y2 + dy)))
        built.append((canvas, objects))
    return built


def sparse_layout(count: int, block: int) -> list[tuple[Image.Image, list[Object]]]:
    """192 px images: three single-shape tiles at random cells of a 3 x 3 grid, the other
    cells background, so each object is small in the whole image."""
    built: list[tuple[Image.Image, list[Object]]] = []
    seed = FIRST_SEED + block * 1_000_000 + 700_000
    rng = random.Random(seed)
    for _ in range(count):
        tiles = [generate_scene(seed + n, max_shapes=1) for n in range(3)]
        seed += 3
        canvas = Image.new("RGB", (192, 192), tiles[0].background)
        objects: list[Object] = []
        for tile, cell in zip(tiles, rng.sample(range(9), 3), strict=True):
            dx, dy = 64 * (cell % 3), 64 * (cell // 3)
            canvas.paste(tile.image, (dx, dy))
            x1, y1, x2, y2 = tile.shapes[0].box
            objects.append((tile.shapes[0].phrase, (x1 + dx, y1 + dy, x2 + dx, y2 + dy)))
        built.append((canvas, objects))
    return built


def png(image: Image.Image) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def recall(
    search: SearchService,
    target: SearchTarget,
    queries: Counter[str],
    relevant: dict[str, set[str]],
    limit: int = 5,
) -> dict[str, float]:
    totals = {"recall@1": 0.0, "recall@5": 0.0}
    for phrase, times in queries.items():
        hits = search.search(SearchQuery(text=f"a {phrase}", target=target, limit=limit)).hits
        found = [hit.image_id in relevant[phrase] for hit in hits]
        for k in (1, 5):
            totals[f"recall@{k}"] += times * sum(found[:k]) / min(k, len(relevant[phrase]))
    total = sum(queries.values())
    return {key: round(100 * value / total, 1) for key, value in totals.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = tempfile.mkdtemp(prefix="region-recall-")
    settings = Settings(
        data_dir=Path(data),
        models={
            "embedder": "fixture:shapes-clip",
            "grounding": "fixture:shapes-grounding",
            "device": "cpu",
        },
        samples={"enabled": False},
        regions={"min_score": args.min_score, "margin": args.margin},
    )
    layout = {"mosaic": mosaic_layout, "sparse": sparse_layout, "scenes": scenes_layout}[
        args.layout
    ]
    gallery = layout(args.scenes, args.block)
    services = Services.open(settings)
    try:
        report = services.ingest(
            [IngestItem.upload(png(image), f"s{n}.png") for n, (image, _) in enumerate(gallery)]
        )
        ids = [result.image.image_id for result in report.results if result.image is not None]
        assert len(ids) == len(gallery), "every scene is indexed"
        if args.boxes == "truth":
            for image_id, (_, objects) in zip(ids, gallery, strict=True):
                boxes = [{"label": p, "score": 1.0, "box": list(box)} for p, box in objects]
                services.tools._annotations.apply_boxes(image_id, PHRASES, boxes, "truth")
        else:
            for start in range(0, len(ids), 32):
                requests = [
                    ImageRequest(i, phrases=tuple(PHRASES)) for i in ids[start : start + 32]
                ]
                services.tools.run("detect", requests)
        queries: Counter[str] = Counter()
        relevant: dict[str, set[str]] = {phrase: set() for phrase in PHRASES}
        for image_id, (_, objects) in zip(ids, gallery, strict=True):
            for phrase, _ in objects:
                queries[phrase] += 1
                relevant[phrase].add(image_id)
        regions = sum(len(services.image(i).get("regions", [])) for i in ids)
        results: dict[str, Any] = {
            "image": recall(services.search, SearchTarget.IMAGE, queries, relevant),
            "region": recall(services.search, SearchTarget.REGION, queries, relevant),
        }
        for weight in args.weights:
            fused = SearchService(services.embedder, services.store, settings.limits, weight)
            results[f"fused(w={weight:g})"] = recall(fused, SearchTarget.HYBRID, queries, relevant)
        best = max(
            (value for key, value in results.items() if key.startswith("fused")),
            key=lambda scores: scores["recall@1"],
        )
        return {
            "layout": args.layout,
            "block": args.block,
            "boxes": args.boxes,
            "images": len(ids),
            "queries": sum(queries.values()),
            "regions_per_image": round(regions / len(ids), 2),
            "min_score": args.min_score,
            "margin": args.margin,
            "results": results,
            "best_fused_minus_image_r1": round(best["recall@1"] - results["image"]["recall@1"], 1),
        }
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--layout", choices=["scenes", "mosaic", "sparse"], default="sparse")
    # Another block of held-out seeds: settings tuned on one block are checked on another.
    parser.add_argument("--block", type=int, default=0, choices=range(0, 100))
    parser.add_argument("--boxes", choices=["detector", "truth"], default="detector")
    parser.add_argument("--min-score", type=float, default=0.3)
    parser.add_argument("--margin", type=float, default=0.15)
    parser.add_argument(
        "--weights", type=lambda text: [float(w) for w in text.split(",")], default=[1.0, 2.0, 4.0]
    )
    logging.basicConfig(level=logging.WARNING)
    emit("region_recall", run(parser.parse_args()))


if __name__ == "__main__":
    main()
