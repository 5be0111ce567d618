"""Debian's chromium driven by PyPI's playwright (never `playwright install`), and the
helpers the page tests share: screenshots at two widths, reading the page's state."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# The flags that let chromium run in these containers (no sandbox, no GPU, small /dev/shm)
# and keep it off the network beyond the loopback server.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
WIDTHS = (375, 1920)
SCREENSHOTS = Path(
    os.environ.get("MMRAG_SCREENSHOTS", Path(__file__).resolve().parent / "screenshots")
)


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    return found


def missing(reason: str) -> None:
    """Skip where no browser is installed; under CI the browser tests must run, so fail."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}: CI must run the browser tests (make test installs it)")
    pytest.skip(reason)


@contextmanager
def launch() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed")
        raise  # unreachable: missing() skips or fails
    path = chromium_path()
    if path is None:
        missing("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageErrors:
    """Uncaught script errors and dialogs (alert() from an injected script would be one)."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

        def dialog(found: Any) -> None:
            self.dialogs.append(found.message)
            found.dismiss()

        page.on("dialog", dialog)


def open_page(browser: Browser, url: str, width: int = 1280) -> tuple[Page, PageErrors]:
    page = browser.new_page(viewport={"width": width, "height": 900}, accept_downloads=True)
    errors = PageErrors(page)
    page.goto(url)
    return page, errors


def ready(page: Page) -> None:
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)


def screenshots(page: Page, name: str) -> list[Path]:
    """The page as it is now at 375 and 1920 px wide (full height), saved for people to look
    at; at each width nothing may stick out sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    saved = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900 if width < 1000 else 1080})
        page.wait_for_timeout(150)  # let the layout settle
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} at {width} px is {overflow} px wider than the window"
        path = SCREENSHOTS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    if before is not None:
        page.set_viewport_size(before)
    return saved
