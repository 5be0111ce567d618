"""The web page in a real browser, measured by the browser itself: first contentful paint,
time to the first search results, and what the page transfers before any image.

The real app (uvicorn on loopback, the fixture CLIP model, a world of shapes scenes) serves
the page to Debian's chromium driven by playwright. Each load is a fresh browser context (an
empty HTTP cache, as a first visit):

- ``fcp_ms``: the ``first-contentful-paint`` entry of the Paint Timing API;
- ``first_results_ms``: in the page, from submitting "a red circle" to the first row of
  thumbnails decoded (``performance.now()`` around the form's submit; the search request,
  rendering and the thumbnails' fetch all count);
- ``transfer``: Resource Timing's ``transferSize`` (and ``encodedBodySize``) of the document
  and every resource that is not an image, after the page is ready; the goal is under 200 kB.

    .venv/bin/python -m bench.web_page            # 20 loads
    .venv/bin/python -m bench.web_page --quick    # 5 loads
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.common import emit, percentiles_ms
from mmrag.api.app import create_app
from mmrag.config import Settings
from mmrag.models.fixtures import fixture_directory
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, generate_world

log = logging.getLogger("bench.web_page")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
SCENES = 200
FIRST_ROW = 5

# Runs in the page: submit a search and wait, frame by frame, until the first row of
# thumbnails has decoded; the milliseconds it took, by the page's own clock.
_TIME_SEARCH = """
async (row) => {
  const input = document.querySelector("#search-text");
  input.value = "a red circle";
  const started = performance.now();
  document.querySelector("#search-form").requestSubmit();
  for (;;) {
    await new Promise(requestAnimationFrame);
    const imgs = [...document.querySelectorAll("#results li.result img")].slice(0, row);
    if (imgs.length === row && imgs.every(img => img.complete && img.naturalWidth > 0)) {
      return performance.now() - started;
    }
  }
}
"""

_TRANSFER = """
() => {
  const [nav] = performance.getEntriesByType("navigation");
  const rest = performance.getEntriesByType("resource").filter(r => r.initiatorType !== "img");
  const entries = [nav, ...rest];
  return {
    transfer_bytes: entries.reduce((sum, e) => sum + e.transferSize, 0),
    body_bytes: entries.reduce((sum, e) => sum + e.encodedBodySize, 0),
    files: entries.map(e => [new URL(e.name).pathname, e.encodedBodySize]),
  };
}
"""


@contextmanager
def serving(data_dir: Path) -> Iterator[str]:
    """The app on a free loopback port, in a thread of this process."""
    fixture_directory("shapes-clip")  # trained (or found) before the clock starts
    settings = Settings(
        data_dir=data_dir,
        models={"embedder": "fixture:shapes-clip", "device": "cpu"},
        samples={"enabled": False},
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def index_world(url: str) -> None:
    scenes = generate_world(SCENES, seed=HELD_OUT_SEEDS.start + 900_000_000)
    with httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, SCENES, 50):
            files = []
            for scene in scenes[start : start + 50]:
                out = io.BytesIO()
                scene.image.save(out, "PNG")
                files.append(("files", (f"{scene.seed}.png", out.getvalue(), "image/png")))
            client.post("/v1/images", files=files).raise_for_status()


def measure(url: str, loads: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    fcp: list[float] = []
    first_results: list[float] = []
    transfer: dict[str, Any] = {}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for _ in range(loads):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(url)
                page.wait_for_selector("body[data-ready=true]")
                page.wait_for_function(
                    "() => performance.getEntriesByName('first-contentful-paint').length > 0"
                )
                paint = page.evaluate(
                    "() => performance.getEntriesByName('first-contentful-paint')[0].startTime"
                )
                fcp.append(paint / 1000)
                transfer = page.evaluate(_TRANSFER)
                first_results.append(page.evaluate(_TIME_SEARCH, FIRST_ROW) / 1000)
                context.close()
        finally:
            browser.close()
    return {
        "loads": loads,
        "fcp": percentiles_ms(fcp),
        "first_results": percentiles_ms(first_results),
        "transfer_before_images": transfer,
        "goal_transfer_bytes": 200 * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch, serving(Path(scratch) / "data") as url:
        index_world(url)
        results = measure(url, 5 if args.quick else 20)
    emit(
        "web_page",
        {"scenes": SCENES, "first_row_thumbnails": FIRST_ROW, "browser": "chromium", **results},
    )


if __name__ == "__main__":
    main()
