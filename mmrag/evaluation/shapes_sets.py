"""Datasets in the standard formats made from the synthetic shapes world, to try `mmrag eval`
with the offline fixture models and to test it:
``python -m mmrag.evaluation.shapes_sets OUT [--scenes 50]`` writes ``images/`` and
``karpathy.json``, ``coco_captions.json``, ``vqa_questions.json``, ``vqa_annotations.json`` and
``detection.json``. Scenes are the held-out ones (seeds the fixtures never trained on)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmrag.models.fixtures.shapes import COLOURS, HELD_OUT_SEEDS, KINDS, generate_world

CATEGORIES = [f"{colour} {kind}" for colour in COLOURS for kind in KINDS]
HUMANS = 10  # answers per question, as VQAv2 has


def write_shapes_sets(out: Path, scenes: int = 50) -> dict[str, Path]:
    """Write the datasets; their paths by name."""
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    world = generate_world(scenes, seed=HELD_OUT_SEEDS.start)
    karpathy: list[dict[str, Any]] = []
    coco_images: list[dict[str, Any]] = []
    captions: list[dict[str, Any]] = []
    questions: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    boxes: list[dict[str, Any]] = []
    for index, scene in enumerate(world):
        name = f"scene-{scene.seed}.png"
        scene.image.save(images / name)
        karpathy.append(
            {
                "filename": name,
                "imgid": index,
                "split": "test",
                "sentences": [{"raw": text} for text in scene.captions],
            }
        )
        coco_images.append(
            {"id": index, "file_name": name, "width": scene.size, "height": scene.size}
        )
        captions += [
            {"id": len(captions) + n, "image_id": index, "caption": text}
            for n, text in enumerate(scene.captions)
        ]
        asked = [("How many shapes are there?", str(len(scene.shapes)))]
        squares = scene.find(kind="square")
        if len(squares) == 1:
            asked.append(("What colour is the square?", squares[0].colour))
        for question, truth in asked:
            key = len(questions)
            questions.append({"question_id": key, "image_id": index, "question": question})
            answers.append(
                {
                    "question_id": key,
                    "image_id": index,
                    "answers": [{"answer": truth, "answer_id": n + 1} for n in range(HUMANS)],
                }
            )
        for shape in scene.shapes:
            x1, y1, x2, y2 = shape.box
            boxes.append(
                {
                    "id": len(boxes) + 1,
                    "image_id": index,
                    "category_id": CATEGORIES.index(f"{shape.colour} {shape.kind}") + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": n + 1, "name": name} for n, name in enumerate(CATEGORIES)]
    files = {
        "karpathy": ({"images": karpathy, "dataset": "shapes"}),
        "coco_captions": {"images": coco_images, "annotations": captions},
        "vqa_questions": {"images": coco_images, "questions": questions},
        "vqa_annotations": {"annotations": answers},
        "detection": {"images": coco_images, "annotations": boxes, "categories": categories},
    }
    paths = {}
    for name, payload in files.items():
        paths[name] = out / f"{name}.json"
        paths[name].write_text(json.dumps(payload, indent=1))
    paths["images"] = images
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--scenes", type=int, default=50)
    arguments = parser.parse_args()
    write_shapes_sets(arguments.out, arguments.scenes)


if __name__ == "__main__":
    main()
