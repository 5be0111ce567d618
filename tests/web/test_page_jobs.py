"""Upload and annotate in a real browser: uploads (a corrupt file's error shown, an oversize
one refused before it is sent), a bulk job followed to completion, its COCO export
downloaded, an archive job's per-item failure shown with its reason."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from agents.conftest import clear_mmrag_env, world_settings
from api.live_server import LiveServer
from web.browser import PageErrors, open_page, ready, screenshots
from workers.shapes_scenes import held_out, png_of

from mmrag.config import JobSettings, LimitSettings
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, generate_world

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FilePayload, Page

pytestmark = pytest.mark.slow

MAX_IMAGE_BYTES = 64 * 1024
CANCELLED_SCENES = 600


@pytest.fixture(scope="module")
def jobs_server(
    tmp_path_factory: pytest.TempPathFactory, browser: Browser
) -> Iterator[tuple[str, httpx.Client]]:
    with pytest.MonkeyPatch.context() as patch:
        clear_mmrag_env(patch)
        settings = world_settings(
            tmp_path_factory.mktemp("web-jobs") / "data", "fixture:shapes-vlm"
        ).model_copy(
            update={
                "limits": LimitSettings(max_image_bytes=MAX_IMAGE_BYTES),
                # One batch at a time: a large job runs long enough to be cancelled.
                "jobs": JobSettings(concurrency=1),
            }
        )
        with LiveServer(settings) as server, httpx.Client(base_url=server.url) as client:
            yield server.url, client


@pytest.fixture
def jobs_page(
    browser: Browser, jobs_server: tuple[str, httpx.Client]
) -> tuple[Page, PageErrors, httpx.Client]:
    """The page on its jobs tab, ready, and a client of the same server."""
    url, client = jobs_server
    page, errors = open_page(browser, f"{url}/#jobs")
    ready(page)
    return page, errors, client


def upload(page: Page, files: list[tuple[str, bytes]]) -> str:
    payloads: list[FilePayload] = [
        {"name": name, "mimeType": "image/png", "buffer": data} for name, data in files
    ]
    page.set_input_files("#upload-files", payloads)
    page.click("#upload-submit")
    page.wait_for_function("() => document.querySelector('#upload-status').textContent.length > 0")
    page.wait_for_function(
        "() => !document.querySelector('#upload-status').classList.contains('loading')"
    )
    return page.inner_text("#upload-status")


def choose_archive(page: Page, members: dict[str, bytes]) -> None:
    """A zip of ``members`` chosen in the upload form: the next archive job's source."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as written:
        for name, data in members.items():
            written.writestr(name, data)
    page.set_input_files(
        "#upload-files",
        {"name": "shots.zip", "mimeType": "application/zip", "buffer": archive.getvalue()},
    )
    page.click("#upload-submit")
    page.wait_for_function(
        "() => document.querySelector('#upload-status').textContent.includes('shots.zip')"
    )


def wait_for_job_end(page: Page) -> str:
    page.wait_for_function(
        "() => /: (completed|cancelled)$/.test(document.querySelector('#job-title').textContent)",
        timeout=120_000,
    )
    return page.inner_text("#job-title")


def test_upload_then_a_job_to_completion_and_its_coco_export(
    jobs_page: tuple[Page, PageErrors, httpx.Client],
) -> None:
    page, errors, client = jobs_page
    scenes = held_out(4)
    status = upload(page, [(f"scene-{scene.seed}.png", png_of(scene)) for scene in scenes])
    assert status == "4 images indexed."

    # A corrupt file: the API's problem detail is shown as it is, never a stack trace.
    corrupt = b"this is not a PNG at all"
    expected = client.post("/v1/images", files=[("files", ("corrupt.png", corrupt, "image/png"))])
    assert expected.status_code >= 400
    status = upload(page, [("corrupt.png", corrupt)])
    assert status == f"Upload failed: {expected.json()['detail']}"
    assert "Traceback" not in status
    assert "error" in (page.get_attribute("#upload-status", "class") or "")

    # Over the size limit: refused in the page, before a byte is sent.
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    status = upload(page, [("huge.png", b"\0" * (MAX_IMAGE_BYTES + 1))])
    assert status == "huge.png is larger than 64 kB, the most an image may be."
    assert not [address for address in sent if address.endswith("/v1/images")]
    screenshots(page, "upload")

    page.check("input[name=job-source][value=uploaded]")
    page.uncheck("#job-caption")
    page.check("#job-detect")
    page.fill("#job-labels", "circle, square, triangle")
    page.click("#job-submit")
    assert wait_for_job_end(page).endswith(": completed")
    summary = page.inner_text("#job-summary")
    assert summary.startswith("4 of 4 settled")
    assert page.inner_text("#job-counts").split() == [
        "done", "4", "failed", "0", "skipped", "0", "running", "0", "pending", "0",
    ]  # fmt: skip
    screenshots(page, "job")

    with page.expect_download() as pending:
        page.click("#job-exports button[data-format=coco]")
    download = pending.value
    assert download.suggested_filename.endswith("-coco.json")
    coco = json.loads(download.path().read_text())
    assert len(coco["images"]) == 4
    assert {category["name"] for category in coco["categories"]} >= {"circle", "square"}
    assert coco["annotations"]
    # A reload goes on showing the job.
    page.reload()
    ready(page)
    assert wait_for_job_end(page).endswith(": completed")

    # What the job detected is a search filter now: "at least 1 circle".
    with_circles = {
        item["id"]
        for item in client.get("/v1/images").json()["items"]
        if item["counts"].get("circle", 0) >= 1
    }
    assert 0 < len(with_circles) < 4
    page.click("#tab-search")
    page.click(".filters summary")
    page.fill("#filter-count-min", "1")
    page.fill("#filter-count-label", "Circle")
    page.fill("#search-text", "a shape")
    page.press("#search-text", "Enter")
    page.wait_for_selector("#results li.result")
    found = page.eval_on_selector_all(
        "#results li.result", "items => items.map(item => item.dataset.imageId)"
    )
    assert set(found) == with_circles
    # Opened, a result shows the boxes the job stored, a circle among them.
    page.click("#results li.result button")
    page.wait_for_selector("#detail[open] .figure svg rect")
    labels = page.eval_on_selector_all("#detail .figure rect", "rs => rs.map(r => r.dataset.label)")
    assert "circle" in labels
    screenshots(page, "detail-boxes")
    page.keyboard.press("Escape")
    page.select_option("#filter-source", "sample")  # nothing comes from the sample gallery
    page.press("#search-text", "Enter")
    page.wait_for_function(
        "() => document.querySelector('#search-status').textContent.startsWith('Nothing found')"
    )
    assert page.locator("#results li").count() == 0
    assert not errors.errors


def test_an_archive_job_shows_each_failed_item_with_its_reason(
    jobs_page: tuple[Page, PageErrors, httpx.Client],
) -> None:
    page, errors, _ = jobs_page
    members = {f"good-{scene.seed}.png": png_of(scene) for scene in held_out(6)[4:]}
    choose_archive(page, {**members, "broken.png": b"not an image"})  # other scenes than above
    assert page.is_checked("input[name=job-source][value=archive]")
    page.check("#job-caption")
    page.uncheck("#job-detect")
    page.click("#job-submit")
    assert wait_for_job_end(page).endswith(": completed")
    page.wait_for_selector("#job-failures li")
    [failure] = page.eval_on_selector_all(
        "#job-failures li", "items => items.map(i => i.textContent)"
    )
    assert failure.startswith("broken.png: ")
    assert len(failure) > len("broken.png: ") + 5  # a reason, not an empty line
    assert page.inner_text("#job-counts").split()[:4] == ["done", "2", "failed", "1"]
    assert not errors.errors


def test_a_running_job_can_be_cancelled(
    jobs_page: tuple[Page, PageErrors, httpx.Client],
) -> None:
    page, errors, _ = jobs_page
    scenes = generate_world(CANCELLED_SCENES, seed=HELD_OUT_SEEDS.start + 800_900_000)
    choose_archive(page, {f"many-{scene.seed}.png": png_of(scene) for scene in scenes})
    page.check("#job-caption")
    page.check("#job-vqa")
    page.fill("#job-questions", "what colour is the circle?")
    page.click("#job-submit")
    page.wait_for_function(
        "() => /: running$/.test(document.querySelector('#job-title').textContent)"
    )
    page.click("#job-cancel")
    assert wait_for_job_end(page).endswith(": cancelled")
    done = int(page.inner_text("#job-counts").split()[1])
    assert done < CANCELLED_SCENES
    assert page.is_visible("#job-exports")  # what was done can still be downloaded
    assert page.is_hidden("#job-cancel")
    assert not errors.errors
