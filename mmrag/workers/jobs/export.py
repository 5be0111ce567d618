"""A job's results in the formats labelling tools read, produced as a stream of text.

Every exporter takes a function that yields the job's items in order (read page by page
from the job store), so memory does not grow with the job. Only items that are done or
skipped (their results already in the index) appear; failed ones have no image.

- ``jsonl``: one JSON object per image: id, source, size, caption, detections, grounding,
  answers.
- ``coco``: COCO detection JSON: ``images`` (integer ids, ``file_name``, ``width``,
  ``height``, and the caption), ``annotations`` (``bbox`` as x, y, width, height in pixels,
  ``area``, ``category_id``, ``score``), ``categories`` (the job's vocabulary, ids from 1).
  Detection and grounding boxes both become annotations.
- ``labelstudio``: a JSON list of Label Studio tasks with ``predictions``: rectangles in
  percent of the image (``rectanglelabels``) and the caption as a ``textarea`` result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Literal

from mmrag.retrieval.annotations import normalise_label
from mmrag.workers.jobs.records import ItemRecord
from mmrag.workers.jobs.spec import DetectTask, GroundTask, JobSpec

ExportFormat = Literal["coco", "jsonl", "labelstudio"]
ItemSource = Callable[[], Iterator[ItemRecord]]

MEDIA_TYPES: dict[ExportFormat, str] = {
    "coco": "application/json",
    "jsonl": "application/x-ndjson",
    "labelstudio": "application/json",
}


def export(format: ExportFormat, spec: JobSpec, items: ItemSource) -> Iterator[str]:
    match format:
        case "jsonl":
            return export_jsonl(items)
        case "coco":
            return export_coco(spec, items)
        case "labelstudio":
            return export_labelstudio(spec, items)


def _done(items: ItemSource) -> Iterator[tuple[ItemRecord, dict[str, Any]]]:
    for item in items():
        if item.state in ("done", "skipped") and item.result is not None:
            yield item, item.result


def _boxes(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [*result.get("detections", []), *result.get("grounding", [])]


def export_jsonl(items: ItemSource) -> Iterator[str]:
    for item, result in _done(items):
        record = {
            "id": item.image_id,
            "source": item.key,
            "width": result["width"],
            "height": result["height"],
            "sha256": result["sha256"],
            "caption": result.get("caption"),
            "detections": result.get("detections", []),
            "grounding": result.get("grounding", []),
            "answers": result.get("answers", []),
        }
        yield json.dumps(record) + "\n"


def vocabulary(spec: JobSpec) -> list[str]:
    """The job's labels and phrases, normalised as the index stores them, in spec order."""
    names: list[str] = []
    for task in spec.tasks:
        if isinstance(task, DetectTask):
            names.extend(task.labels)
        elif isinstance(task, GroundTask):
            names.extend(task.phrases)
    return list(dict.fromkeys(normalise_label(name) for name in names))


def export_coco(spec: JobSpec, items: ItemSource) -> Iterator[str]:
    categories = {name: index for index, name in enumerate(vocabulary(spec), start=1)}
    yield '{"info": {"description": "mmrag annotation job", "version": "1.0"}, "images": ['
    # Two passes over the store (images, then their boxes): valid JSON with nothing held.
    for position, (item, result) in enumerate(_done(items)):
        image = {
            "id": item.seq + 1,
            "file_name": item.key,
            "width": result["width"],
            "height": result["height"],
            "mmrag_id": item.image_id,
        }
        if result.get("caption") is not None:
            image["caption"] = result["caption"]
        yield ("," if position else "") + json.dumps(image)
    yield '], "annotations": ['
    annotation_id = 0
    for item, result in _done(items):
        for box in _boxes(result):
            category = categories.get(normalise_label(str(box["label"])))
            if category is None:
                continue  # a model answering with a label it was not asked for
            x1, y1, x2, y2 = (float(value) for value in box["box"])
            width, height = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
            annotation_id += 1
            annotation = {
                "id": annotation_id,
                "image_id": item.seq + 1,
                "category_id": category,
                "bbox": [x1, y1, width, height],
                "area": width * height,
                "iscrowd": 0,
                "score": float(box["score"]),
            }
            yield ("," if annotation_id > 1 else "") + json.dumps(annotation)
    listed = [
        {"id": index, "name": name, "supercategory": "object"} for name, index in categories.items()
    ]
    yield '], "categories": ' + json.dumps(listed) + "}"


def export_labelstudio(spec: JobSpec, items: ItemSource) -> Iterator[str]:
    model_version = "mmrag:" + "+".join(spec.task_names())
    yield "["
    for position, (item, result) in enumerate(_done(items)):
        width, height = float(result["width"]), float(result["height"])
        results: list[dict[str, Any]] = []
        scores = []
        for index, box in enumerate(_boxes(result)):
            x1, y1, x2, y2 = (float(value) for value in box["box"])
            scores.append(float(box["score"]))
            results.append(
                {
                    "id": f"{item.image_id}-{index}",
                    "type": "rectanglelabels",
                    "from_name": "label",
                    "to_name": "image",
                    "original_width": int(width),
                    "original_height": int(height),
                    "image_rotation": 0,
                    "score": float(box["score"]),
                    "value": {
                        "x": 100 * x1 / width,
                        "y": 100 * y1 / height,
                        "width": 100 * (x2 - x1) / width,
                        "height": 100 * (y2 - y1) / height,
                        "rotation": 0,
                        "rectanglelabels": [str(box["label"])],
                    },
                }
            )
        if result.get("caption") is not None:
            results.append(
                {
                    "id": f"{item.image_id}-caption",
                    "type": "textarea",
                    "from_name": "caption",
                    "to_name": "image",
                    "value": {"text": [result["caption"]]},
                }
            )
        task = {
            "data": {"image": f"/v1/images/{item.image_id}/content", "source": item.key},
            "meta": {"mmrag_id": item.image_id},
            "predictions": [
                {
                    "model_version": model_version,
                    "score": sum(scores) / len(scores) if scores else None,
                    "result": results,
                }
            ],
        }
        yield ("," if position else "") + json.dumps(task)
    yield "]"
