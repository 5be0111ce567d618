"""The standard dataset formats, read and checked: every problem is one
:class:`InvalidInput` line naming the file and the entry, before any model runs.

- captions (retrieval and captioning): Flickr30k / COCO Karpathy JSON
  (``{"images": [{"filename", "imgid"?, "sentences": [{"raw"}], "split"?}]}``) or COCO captions
  (``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``);
- VQA: VQAv2 questions (``{"questions": [{"question_id", "image_id", "question"}]}``) and
  annotations (``{"annotations": [{"question_id", "answers": [{"answer"}]}]}``), images named
  by a COCO-style ``{"images": [...]}`` list in either file or ``<image_id>.jpg``/``.png``;
- grounding / detection: COCO detection JSON (``images``, ``annotations`` with ``bbox`` as
  ``[x, y, width, height]``, ``categories``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.errors import InvalidInput


@dataclass(frozen=True)
class CaptionedImage:
    key: str  # the dataset's image id
    path: Path
    captions: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    question_id: str
    image: Path
    question: str
    answers: tuple[str, ...]  # the human answers (VQAv2: ten)


@dataclass(frozen=True)
class DetectionImage:
    image_id: int
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class DetectionSet:
    coco: dict[str, Any]  # the checked JSON, as pycocotools reads it
    images: tuple[DetectionImage, ...]
    categories: dict[int, str]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: malformed JSON ({error})") from None


def _image_path(images: Path, name: object, source: Path) -> Path:
    if (
        not isinstance(name, str)
        or not name
        or Path(name).is_absolute()
        or ".." in Path(name).parts
    ):
        raise InvalidInput(f"{source}: image file name {name!r} is not a relative path")
    path = images / name
    if not path.is_file():
        raise InvalidInput(f"{source}: image {name} is missing from {images}")
    return path


def _list(payload: Any, field: str, source: Path) -> list[Any]:
    value = payload.get(field) if isinstance(payload, dict) else None
    if not isinstance(value, list):
        raise InvalidInput(f"{source}: expected a JSON object with a {field!r} list")
    return value


def _unique(key: object, seen: set[object], what: str, source: Path) -> None:
    if key in seen:
        raise InvalidInput(f"{source}: duplicate {what} {key!r}")
    seen.add(key)


def load_captions(path: Path, images: Path, split: str | None = None) -> list[CaptionedImage]:
    """A Karpathy or COCO captions file; ``split`` keeps only that Karpathy split."""
    payload = read_json(path)
    entries = _list(payload, "images", path)
    if isinstance(payload, dict) and "annotations" in payload:
        return _coco_captions(payload, entries, images, path)
    found: list[CaptionedImage] = []
    seen: set[object] = set()
    for entry in entries:
        if not isinstance(entry, dict) or "filename" not in entry:
            raise InvalidInput(f"{path}: a Karpathy image entry needs filename and sentences")
        key = entry.get("imgid", entry["filename"])
        _unique(key, seen, "image id", path)
        if split is not None and entry.get("split") != split:
            continue
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise InvalidInput(f"{path}: image {key!r} has no sentences")
        captions = tuple(_caption(sentence, key, path) for sentence in sentences)
        found.append(
            CaptionedImage(str(key), _image_path(images, entry["filename"], path), captions)
        )
    if not found:
        raise InvalidInput(f"{path}: no images" + (f" in split {split!r}" if split else ""))
    return found


def _caption(sentence: Any, key: object, source: Path) -> str:
    raw = sentence.get("raw") if isinstance(sentence, dict) else sentence
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(f"{source}: image {key!r} has an empty caption")
    return raw.strip()


def _coco_captions(
    payload: dict[str, Any], entries: list[Any], images: Path, path: Path
) -> list[CaptionedImage]:
    files = _coco_image_files(entries, images, path)
    captions: dict[object, list[str]] = {key: [] for key in files}
    for annotation in _list(payload, "annotations", path):
        if not isinstance(annotation, dict) or annotation.get("image_id") not in captions:
            raise InvalidInput(f"{path}: caption {annotation!r} names no listed image")
        captions[annotation["image_id"]].append(
            _caption(annotation.get("caption"), annotation["image_id"], path)
        )
    missing = [key for key, texts in captions.items() if not texts]
    if missing:
        raise InvalidInput(f"{path}: image {missing[0]!r} has no captions")
    return [CaptionedImage(str(key), files[key], tuple(captions[key])) for key in files]


def _coco_image_files(entries: list[Any], images: Path, path: Path) -> dict[object, Path]:
    files: dict[object, Path] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            raise InvalidInput(f"{path}: a COCO image entry needs id and file_name")
        _unique(entry["id"], set(files), "image id", path)
        files[entry["id"]] = _image_path(images, entry["file_name"], path)
    return files


def load_vqa(questions: Path, annotations: Path, images: Path) -> list[Question]:
    """VQAv2 questions joined with their annotations' human answers."""
    question_payload = read_json(questions)
    answer_payload = read_json(annotations)
    files: dict[object, Path] = {}
    for payload, source in ((question_payload, questions), (answer_payload, annotations)):
        if isinstance(payload, dict) and "images" in payload:
            files.update(_coco_image_files(payload["images"], images, source))
    answers: dict[object, tuple[str, ...]] = {}
    for annotation in _list(answer_payload, "annotations", annotations):
        if not isinstance(annotation, dict) or "question_id" not in annotation:
            raise InvalidInput(f"{annotations}: an annotation needs question_id and answers")
        _unique(annotation["question_id"], set(answers), "question id", annotations)
        given = annotation.get("answers")
        if not isinstance(given, list) or not given:
            raise InvalidInput(
                f"{annotations}: question {annotation['question_id']!r} has no answers"
            )
        answers[annotation["question_id"]] = tuple(
            str(answer.get("answer", "")) if isinstance(answer, dict) else str(answer)
            for answer in given
        )
    found: list[Question] = []
    seen: set[object] = set()
    for entry in _list(question_payload, "questions", questions):
        if (
            not isinstance(entry, dict)
            or not {"question_id", "image_id", "question"} <= entry.keys()
        ):
            raise InvalidInput(f"{questions}: a question needs question_id, image_id and question")
        key = entry["question_id"]
        _unique(key, seen, "question id", questions)
        if key not in answers:
            raise InvalidInput(f"{annotations}: question {key!r} has no annotation")
        image = files.get(entry["image_id"]) or _numbered_image(
            images, entry["image_id"], questions
        )
        found.append(Question(str(key), image, str(entry["question"]), answers[key]))
    return found


def _numbered_image(images: Path, image_id: object, source: Path) -> Path:
    for suffix in (".jpg", ".png"):
        path = images / f"{image_id}{suffix}"
        if path.is_file():
            return path
    raise InvalidInput(f"{source}: image {image_id!r} is missing from {images}")


def load_detection(path: Path, images: Path) -> DetectionSet:
    """A COCO detection file, checked: boxes inside their image, ids unique, categories
    known."""
    payload = read_json(path)
    entries = _list(payload, "images", path)
    files = _coco_image_files(entries, images, path)
    sizes: dict[object, tuple[int, int]] = {}
    for entry in entries:
        width, height = entry.get("width"), entry.get("height")
        if not isinstance(width, int) or not isinstance(height, int) or width < 1 or height < 1:
            raise InvalidInput(f"{path}: image {entry['id']!r} needs a positive width and height")
        sizes[entry["id"]] = (width, height)
    categories: dict[int, str] = {}
    for category in _list(payload, "categories", path):
        if not isinstance(category, dict) or not isinstance(category.get("id"), int):
            raise InvalidInput(f"{path}: a category needs an integer id and a name")
        _unique(category["id"], set(categories), "category id", path)
        categories[category["id"]] = str(category.get("name", "")).strip()
        if not categories[category["id"]]:
            raise InvalidInput(f"{path}: category {category['id']} has no name")
    seen: set[object] = set()
    for annotation in _list(payload, "annotations", path):
        _check_annotation(annotation, sizes, categories, seen, path)
    checked = [
        DetectionImage(int(key), files[key], *sizes[key])  # type: ignore[call-overload]
        for key in files
    ]
    return DetectionSet(payload, tuple(checked), categories)


def _check_annotation(
    annotation: Any,
    sizes: dict[object, tuple[int, int]],
    categories: dict[int, str],
    seen: set[object],
    path: Path,
) -> None:
    if not isinstance(annotation, dict) or "id" not in annotation:
        raise InvalidInput(f"{path}: an annotation needs id, image_id, category_id and bbox")
    key = annotation["id"]
    _unique(key, seen, "annotation id", path)
    if annotation.get("image_id") not in sizes:
        raise InvalidInput(f"{path}: annotation {key!r} names no listed image")
    if annotation.get("category_id") not in categories:
        raise InvalidInput(f"{path}: annotation {key!r} names no listed category")
    box = annotation.get("bbox")
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, int | float) for v in box)
    ):
        raise InvalidInput(f"{path}: annotation {key!r} needs bbox [x, y, width, height]")
    x, y, w, h = box
    width, height = sizes[annotation["image_id"]]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width + 0.5 or y + h > height + 0.5:
        raise InvalidInput(
            f"{path}: annotation {key!r} box {box} lies outside its {width} x {height} image"
        )
