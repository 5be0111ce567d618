"""The page with API keys configured: it asks for one, keeps it in memory only, sends it as
the API expects, and disables what a read-only key may not do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from agents.conftest import clear_mmrag_env, world_settings
from api.live_server import LiveServer
from web.browser import open_page, screenshots
from web.conftest import upload_scenes
from workers.shapes_scenes import held_out

from mmrag.config import AuthSettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

KEYS = {"alice-secret-key": ["read", "write"], "bob-secret-key": ["read"]}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[str]:
    keys = [
        {"name": key.split("-")[0], "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": s}
        for key, s in KEYS.items()
    ]
    with pytest.MonkeyPatch.context() as patch:
        clear_mmrag_env(patch)
        settings = world_settings(
            tmp_path_factory.mktemp("web-auth") / "data", "fixture:shapes-vlm"
        ).model_copy(update={"auth": AuthSettings.model_validate({"api_keys": keys})})
        with LiveServer(settings) as server:
            headers = {"Authorization": "Bearer alice-secret-key"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                upload_scenes(client, held_out(6))
            yield server.url


def sign_in(page: Page, key: str) -> None:
    page.wait_for_selector("#login[open]")
    page.fill("#login-key", key)
    page.press("#login-key", "Enter")


def signed_in(page: Page) -> None:
    page.wait_for_function(
        "() => document.querySelector('#auth-status').textContent.startsWith('Key')"
    )
    page.wait_for_selector("body[data-ready=true]")


def test_a_read_only_key_searches_and_sees_uploads_disabled(
    browser: Browser, auth_server: str
) -> None:
    page, errors = open_page(browser, f"{auth_server}/#jobs")
    requests: list[tuple[str, dict[str, str]]] = []
    page.on("request", lambda request: requests.append((request.url, request.headers)))
    # Dismissed, the question leaves the write controls off and offers "Sign in".
    page.wait_for_selector("#login[open]")
    page.keyboard.press("Escape")
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_disabled("#upload-submit")
    page.click("#auth-status button:has-text('Sign in')")
    sign_in(page, "not-a-key")
    page.wait_for_function("() => document.querySelector('#login-error').textContent.length > 0")
    assert page.inner_text("#login-error") == "unknown API key"
    screenshots(page, "sign-in")
    sign_in(page, "bob-secret-key")
    signed_in(page)
    assert page.inner_text("#auth-status").startswith("Key “bob” (read)")
    assert page.is_disabled("#upload-files")
    assert page.is_disabled("#upload-submit")
    assert page.is_disabled("#job-submit")
    assert page.is_visible("#write-hint")

    page.click("#tab-search")
    page.fill("#search-text", "a red circle")
    page.press("#search-text", "Enter")
    page.wait_for_selector("#results li.result img[src^='blob:']")  # fetched with the key

    # The key went as a header, and nowhere else: not in a URL, not in web storage.
    assert any(h.get("authorization") == "Bearer bob-secret-key" for _, h in requests)
    assert not [url for url, _ in requests if "secret" in url]
    stored = page.evaluate(
        "JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage}) + document.cookie"
    )
    assert "secret" not in stored
    assert "secret" not in page.url
    # A reload forgets it: the page asks again.
    page.reload()
    page.wait_for_selector("#login[open]")
    assert not errors.errors


def test_a_writing_key_gets_the_upload_controls(browser: Browser, auth_server: str) -> None:
    page, errors = open_page(browser, f"{auth_server}/#jobs")
    sign_in(page, "alice-secret-key")
    signed_in(page)
    assert page.is_enabled("#upload-files")
    assert page.is_enabled("#job-submit")
    assert page.is_hidden("#write-hint")
    assert not errors.errors
