"""The sample gallery indexed on first start, so a newcomer can search at once.

scikit-image's bundled photos (they load offline) with hand-written captions, plus images of
the synthetic shapes world with their generated captions.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from PIL import Image

from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, generate_world
from mmrag.retrieval.items import IngestItem, IngestReport

log = logging.getLogger(__name__)

MARKER = ".samples-seeded"
# Held out from the fixture model's training, and apart from the seeds its evaluation uses.
SHAPES_SEED = HELD_OUT_SEEDS.start + 500_000_000

PHOTO_CAPTIONS: dict[str, str] = {
    "astronaut": "an astronaut in a white spacesuit with the American flag",
    "chelsea": "a ginger tabby cat looking to the side",
    "coffee": "a cup of coffee on a saucer with a spoon",
    "rocket": "a rocket on the launch pad against a blue sky",
    "hubble_deep_field": "galaxies in the deep field of space seen by the Hubble telescope",
    "immunohistochemistry": "a microscope slide of stained tissue",
    "camera": "a black and white photo of a cameraman with a tripod",
    "coins": "old coins laid out on a dark background",
    "moon": "the surface of the moon with craters",
    "page": "a scanned page of printed text",
    "clock": "a wall clock photographed at an angle",
    "colorwheel": "a colour wheel with every hue",
    "retina": "a photo of the retina at the back of an eye",
}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _sample(data: bytes, name: str, caption: str, gallery: str) -> IngestItem:
    # Source kind "sample" lets a search leave the gallery out (filter source).
    return IngestItem("sample", name, lambda: data, (caption,), {"gallery": gallery})


def photo_items() -> Iterator[IngestItem]:
    import skimage.data

    for name, caption in PHOTO_CAPTIONS.items():
        photo = Image.fromarray(getattr(skimage.data, name)())
        yield _sample(_png(photo), f"{name}.png", caption, "scikit-image")


def shape_items(count: int) -> Iterator[IngestItem]:
    for scene in generate_world(count, seed=SHAPES_SEED):
        yield _sample(_png(scene.image), f"shapes-{scene.seed}.png", scene.captions[0], "shapes")


def seed_sample_gallery(
    data_dir: Path, shapes: int, ingest: Callable[[Sequence[IngestItem]], IngestReport]
) -> None:
    """Index the gallery (the photos and ``shapes`` scenes) through ``ingest`` once per data
    dir; later starts (even with an emptied index) skip it."""
    marker = data_dir / MARKER
    if marker.exists():
        return
    items = [*photo_items(), *shape_items(shapes)]
    report = ingest(items)
    log.info(
        "sample gallery: %d indexed, %d already there, %d failed",
        len(report.indexed),
        len(report.duplicates),
        len(report.failed),
    )
    marker.write_text("indexed\n")
