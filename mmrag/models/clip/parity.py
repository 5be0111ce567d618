"""Parity before serving: a backend serves only if its vectors match torch fp32's.

At load, fixed probe images and texts go through the candidate and through the torch fp32
reference; the candidate is refused (one log line) when the lowest cosine similarity between
the two falls below its precision's bound, and the next candidate is tried. Torch fp32 is the
last resort and needs no check.

The bounds. An fp32 export computes the same sums in another order: cosines of 0.99999 and
more; below 0.999 the export is wrong (a bad graph, other weights), not merely reordered.
bf16 keeps 8 bits of mantissa, but OpenVINO accumulates in fp32: measured 0.9999 and up on
the fixture CLIP and on ViT-B-32, so 0.999 holds bf16 to what fp32 exports must reach anyway.
Dynamic int8 loses more (measured 0.9992-0.9999 on those two and the tiny test model); 0.99
still ranks a collection as fp32 does (bench/embed_throughput.py measures top-1 and recall@10
on the shapes world next to torch fp32: int8 lost no more than 1 point), and a broken
quantisation falls far below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mmrag.models.clip.backends import Choice, Precision
from mmrag.models.clip.preprocess import ImagePreprocess, PreparedImage, fit_image
from mmrag.models.clip.runtimes import Features, TowerRunner

log = logging.getLogger(__name__)

BOUNDS: dict[Precision, float] = {"fp32": 0.999, "bf16": 0.999, "int8": 0.99}
PROBE_TEXTS = (
    "a red circle",
    "two blue squares and a green triangle on the left",
    "a photo of a dog on a beach at sunset",
    "x",
)


@dataclass(frozen=True)
class Parity:
    image: float  # lowest cosine over the probe images
    text: float  # lowest cosine over the probe texts

    @property
    def worst(self) -> float:
        return min(self.image, self.text)


def probe_images(cfg: ImagePreprocess) -> list[PreparedImage]:
    """Four fixed images at the model's input size: shapes on a plain ground, a gradient,
    stripes and seeded noise (flat, smooth, sharp and random content)."""
    size = (max(cfg.width, 64), max(cfg.height, 64))
    shapes = Image.new("RGB", size, (235, 230, 220))
    draw = ImageDraw.Draw(shapes)
    w, h = size
    draw.ellipse((w * 0.1, h * 0.1, w * 0.45, h * 0.45), fill=(220, 30, 30))
    draw.rectangle((w * 0.55, h * 0.5, w * 0.9, h * 0.85), fill=(30, 60, 200))
    draw.polygon([(w * 0.2, h * 0.9), (w * 0.35, h * 0.55), (w * 0.5, h * 0.9)], fill=(20, 160, 60))
    ramp = np.linspace(0, 255, w, dtype=np.float32)
    gradient = np.stack(
        [np.tile(ramp, (h, 1)), np.tile(ramp[::-1], (h, 1)), np.full((h, w), 128.0)], axis=-1
    )
    stripes = np.zeros((h, w, 3), np.float32)
    stripes[:, (np.arange(w) // 4) % 2 == 0] = (250.0, 200.0, 40.0)
    noise = np.random.default_rng(1234).integers(0, 256, (h, w, 3))
    arrays = [gradient, stripes, noise]
    images = [shapes, *(Image.fromarray(a.astype(np.uint8), "RGB") for a in arrays)]
    return [fit_image(image, cfg) for image in images]


def measure(
    candidate: TowerRunner,
    reference: TowerRunner,
    images: Sequence[PreparedImage],
    tokens: Any,
) -> Parity:
    pixels = np.stack(images)
    return Parity(
        image=_min_cosine(candidate.encode_images(pixels), reference.encode_images(pixels)),
        text=_min_cosine(candidate.encode_texts(tokens), reference.encode_texts(tokens)),
    )


def _min_cosine(a: Features, b: Features) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    cosines = np.sum(a * b, axis=1)
    # NaN (a runtime that answers garbage) must fail the check, not slip past a comparison.
    return float(np.nan_to_num(cosines, nan=-1.0).min())


@dataclass(frozen=True)
class Selected:
    """What serves, why, and the parity it showed (None for the reference itself)."""

    runner: TowerRunner
    reason: str
    parity: Parity | None
    refused: tuple[str, ...]  # one line per candidate tried and refused

    @property
    def choice(self) -> Choice:
        return self.runner.choice


def select(
    candidates: Sequence[Choice],
    reason: str,
    reference: TowerRunner,
    open_runner: Callable[[Choice], TowerRunner],
    installed: Callable[[Choice], bool],
    images: Sequence[PreparedImage],
    tokens: Any,
    contenders: int = 1,
) -> Selected:
    """The first candidate that opens and holds its parity bound; the reference otherwise.

    With ``contenders`` over 1 (``auto``), the first that many candidates that hold parity are
    timed on the probe images and the fastest serves: CPU features rank the candidates, but a
    shared or throttled machine can reorder the top two (measured: OpenVINO bf16 and ONNX
    Runtime int8 cost the same CPU time per image on an AVX-512 BF16 CPU, yet under load ONNX
    Runtime's unpinned threads gave 2.9x the images per second).
    """
    refused: list[str] = []
    passing: list[tuple[TowerRunner, Parity]] = []
    for choice in candidates:
        if choice == reference.choice:
            break
        if not installed(choice):
            refused.append(f"{choice}: {choice.backend} is not installed")
            log.warning("embedder backend %s skipped: %s is not installed", choice, choice.backend)
            continue
        try:
            runner = open_runner(choice)
            parity = measure(runner, reference, images, tokens)
        except Exception as error:  # any library's failure means: try the next one
            refused.append(f"{choice}: {_first_line(error)}")
            log.warning("embedder backend %s refused: it failed (%s)", choice, _first_line(error))
            log.debug("backend %s failure", choice, exc_info=error)
            continue
        bound = BOUNDS[choice.precision]
        if parity.worst < bound:
            refused.append(f"{choice}: parity {parity.worst:.5f} below {bound}")
            log.warning(
                "embedder backend %s refused: cosine to torch fp32 %.5f (images %.5f, texts "
                "%.5f) is below %s",
                choice,
                parity.worst,
                parity.image,
                parity.text,
                bound,
            )
            continue
        passing.append((runner, parity))
        if len(passing) >= contenders:
            break
    if not passing:
        return Selected(reference, reason, None, tuple(refused))
    if len(passing) > 1:
        pixels = np.stack(images)
        timed = [(seconds_per_batch(runner, pixels), runner, parity) for runner, parity in passing]
        timed.sort(key=lambda entry: entry[0])
        laps = ", ".join(f"{runner.choice} {1000 * s:.1f} ms" for s, runner, _ in timed)
        reason += f"; timed probe of {len(images)} images: {laps}"
        _, runner, parity = timed[0]
        return Selected(runner, reason, parity, tuple(refused))
    runner, parity = passing[0]
    return Selected(runner, reason, parity, tuple(refused))


def seconds_per_batch(runner: TowerRunner, pixels: Any, repeats: int = 3) -> float:
    """The best of ``repeats`` runs of the image tower on one batch (after the parity run,
    which warmed it up): the best, since other processes only ever add time."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        runner.encode_images(pixels)
        best = min(best, time.perf_counter() - started)
    return best


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
