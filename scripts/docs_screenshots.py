"""Copies the best screenshots the web page tests saved (tests/web/screenshots/) into
docs/screenshots/ for the README, small: the first screenful only, scaled to at most 1280 px
wide, as a 64-colour palette PNG (each under 200 kB).

    .venv/bin/python -m pytest tests/web && .venv/bin/python scripts/docs_screenshots.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "web" / "screenshots"
TARGET = ROOT / "docs" / "screenshots"
CHOSEN = ("search-1920", "ask-1920", "detail-boxes-375", "job-375")
MAX_WIDTH = 1280
SCREENFUL = 16 / 9  # at most this tall for its width (a phone shot keeps about two screens)
PHONE_SCREENFULS = 3.2


def shrink(name: str) -> Path:
    image = Image.open(SOURCE / f"{name}.png").convert("RGB")
    ratio = PHONE_SCREENFULS if image.width < 800 else 1 / SCREENFUL
    image = image.crop((0, 0, image.width, min(image.height, round(image.width * ratio))))
    if image.width > MAX_WIDTH:
        height = round(image.height * MAX_WIDTH / image.width)
        image = image.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
    palette = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = TARGET / f"{name}.png"
    palette.save(out, optimize=True)
    return out


def main() -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in CHOSEN:
        out = shrink(name)
        size = out.stat().st_size
        sys.stderr.write(f"{out.relative_to(ROOT)}: {size // 1024} kB\n")
        if size > 200 * 1024:
            raise SystemExit(f"{out} is over 200 kB")


if __name__ == "__main__":
    main()
