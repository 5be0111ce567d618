"""The page's routes and headers over real HTTP, no browser: what is served, with which
Content-Security-Policy and nosniff, the config endpoint, and the page's own files (same
origin only, no inline script or style, small)."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api.live_server import LiveServer
from web.browser import missing
from workers.shapes_scenes import held_out, png_of

from mmrag.api.routes.web import WEB_DIR
from mmrag.api.security_headers import API_POLICY, PAGE_POLICY
from mmrag.config import AuthSettings, Settings

PAGE_FILES = sorted(path for path in WEB_DIR.rglob("*") if path.is_file())


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def assert_nosniff(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_is_served_at_the_root_with_a_strict_policy(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_POLICY
    assert "script-src 'self';" in PAGE_POLICY
    assert "unsafe" not in PAGE_POLICY
    assert_nosniff(page)
    assert '<script type="module" src="/web/js/main.js">' in page.text


@pytest.mark.parametrize(
    "path", [p.relative_to(WEB_DIR).as_posix() for p in PAGE_FILES], ids=lambda p: p
)
def test_every_page_file_is_served_with_the_headers(api: httpx.Client, path: str) -> None:
    response = api.get(f"/web/{path}")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == PAGE_POLICY
    assert response.headers["cache-control"] == "no-cache"
    assert_nosniff(response)
    if path.endswith(".js"):
        assert response.headers["content-type"].startswith("text/javascript")


def test_image_bytes_and_api_bodies_get_nosniff_and_a_policy_that_allows_nothing(
    api: httpx.Client,
) -> None:
    [scene] = held_out(1)
    created = api.post("/v1/images", files=[("files", ("a.png", png_of(scene), "image/png"))])
    image_id = created.json()["items"][0]["id"]
    for path in (f"/v1/images/{image_id}/content", f"/v1/images/{image_id}/thumbnail"):
        response = api.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/")
        assert_nosniff(response)
        assert response.headers["content-security-policy"] == API_POLICY
    missing = api.get("/v1/images/" + "0" * 32)
    assert missing.status_code == 404
    assert_nosniff(missing)
    assert missing.headers["content-security-policy"] == API_POLICY
    # The stored boxes and counts are part of an image (none yet).
    body = api.get(f"/v1/images/{image_id}").json()
    assert body["boxes"] == []
    assert body["counts"] == {}


def test_an_unexpected_error_gets_the_headers_too(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> dict[str, str]:
        raise RuntimeError("a bug")

    with LiveServer(settings) as server, httpx.Client(base_url=server.url) as client:
        monkeypatch.setattr(server.app.state.services, "readiness", broken)
        response = client.get("/readyz")
    assert response.status_code == 500
    assert response.json()["detail"] == "the server failed; the error was logged"
    assert_nosniff(response)
    assert response.headers["content-security-policy"] == API_POLICY


def test_the_config_says_the_limits_and_no_key_is_needed(
    api: httpx.Client, settings: Settings
) -> None:
    config = api.get("/web/config.json").json()
    assert config["auth_required"] is False
    assert config["key"] is None
    assert config["limits"]["max_image_bytes"] == settings.limits.max_image_bytes
    schema = api.get("/openapi.json").json()
    assert "/web/config.json" in schema["paths"]
    assert "/" not in schema["paths"]


def test_with_keys_the_config_names_the_presented_key_and_refuses_unknown_ones(
    settings: Settings,
) -> None:
    keys = [{"name": "bob", "sha256": hashlib.sha256(b"bob-key").hexdigest(), "scopes": ["read"]}]
    settings = settings.model_copy(update={"auth": AuthSettings.model_validate({"api_keys": keys})})
    with LiveServer(settings) as server, httpx.Client(base_url=server.url) as client:
        anonymous = client.get("/web/config.json").json()
        assert anonymous["auth_required"] is True
        assert anonymous["key"] is None
        # The page itself needs no key: it asks for one.
        assert client.get("/").status_code == 200
        bob = client.get("/web/config.json", headers={"Authorization": "Bearer bob-key"})
        assert bob.json()["key"] == {"name": "bob", "scopes": ["read"]}
        unknown = client.get("/web/config.json", headers={"X-API-Key": "guess"})
        assert unknown.status_code == 401
        assert unknown.headers["content-type"] == "application/problem+json"


def test_the_page_loads_nothing_from_elsewhere_and_runs_no_inline_code() -> None:
    html = (WEB_DIR / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="module" src="/web/js/main.js">']
    assert "</script>" in html
    assert not re.search(r"<script[^>]*>[^<]+</script>", html)
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)
    for path in PAGE_FILES:
        text = path.read_text()
        # Only the SVG namespace, which names no address the page loads.
        addresses = set(re.findall(r"https?://[^\s\"'`)]+", text))
        assert addresses <= {"http://www.w3.org/2000/svg"}, (path, addresses)
        if path.suffix == ".js":
            code = re.sub(r"//.*$", "", text, flags=re.MULTILINE)  # comments say why not
            assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML", code), path
            assert not re.search(r"localStorage|document\.cookie", code), path
            assert not re.search(r"\beval\(|new Function", code), path


def test_the_page_weighs_under_200_kb_before_images() -> None:
    total = sum(Path(path).stat().st_size for path in PAGE_FILES)
    assert total < 200 * 1024, total


def test_every_page_file_ships_in_the_package() -> None:
    """A non-editable install (the Docker image) carries only what package-data names."""
    pyproject = tomllib.loads((WEB_DIR.parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["mmrag"]
    package = WEB_DIR.parents[1]

    def globbed(parts: tuple[str, ...], pattern: str) -> bool:
        # As setuptools globs: "*" stays within one directory.
        wanted = pattern.split("/")
        return len(parts) == len(wanted) and all(map(fnmatch.fnmatch, parts, wanted))

    for path in PAGE_FILES:
        parts = path.relative_to(package).parts
        assert any(globbed(parts, pattern) for pattern in patterns), parts


def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser tests"):
        missing("Debian's chromium is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        missing("Debian's chromium is not installed")
