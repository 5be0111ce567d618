"""A fresh machine's first run over real HTTP: fixture models train in the background while the
server already answers; tools say so at once (503 + Retry-After), /readyz shows the build."""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api.live_server import LiveServer
from PIL import Image

from mmrag.config import Settings
from mmrag.models.fixtures import build as fixture_build
from mmrag.models.fixtures.progress import report_step


class GatedBuild:
    """A fixture build that reports a quarter done, then waits for the test to let it finish
    (copying a real tiny model into place) or fail."""

    def __init__(self, source: Path | None) -> None:
        self.source = source
        self.release = threading.Event()

    def __call__(self, directory: Path, threads: int) -> None:
        report_step(1, 4)
        assert self.release.wait(60), "the test never released the build"
        if self.source is None:
            raise RuntimeError("no space left on device")
        shutil.copytree(self.source, directory, dirs_exist_ok=True)
        report_step(4, 4)


def _settings(base: Settings, tmp_path: Path, **models: str) -> Settings:
    return Settings(
        data_dir=base.data_dir,
        models={
            "embedder": base.models.embedder,
            "device": "cpu",
            "batch_size": 8,
            "cache_dir": str(tmp_path / "fixture-cache"),
            **models,
        },
        samples={"enabled": False},
    )


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(client: httpx.Client) -> str:
    response = client.post("/v1/images", files={"files": ("red.png", _png(), "image/png")})
    assert response.status_code == 201, response.text
    image_id: str = response.json()["items"][0]["id"]
    return image_id


def _wait_for_state(client: httpx.Client, name: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get("/readyz").json()
        builds = body["builds"]
        assert isinstance(builds, dict)
        if builds[name]["state"] == state:
            return body
        time.sleep(0.1)
    raise AssertionError(f"fixture {name} never reached {state}")


def _register(monkeypatch: pytest.MonkeyPatch, name: str, source: Path | None) -> GatedBuild:
    gated_build = GatedBuild(source)
    fixture = fixture_build.Fixture(key=f"{name}-recipe", build=gated_build)
    monkeypatch.setitem(fixture_build.FIXTURES, name, lambda: fixture)
    return gated_build


@pytest.fixture
def release_builds() -> Iterator[list[GatedBuild]]:
    """Builds the test registered, released when it ends so no thread waits for ever."""
    builds: list[GatedBuild] = []
    yield builds
    for gated_build in builds:
        gated_build.release.set()


def test_a_tool_answers_503_at_once_while_its_model_builds_then_runs(
    settings: Settings,
    tmp_path: Path,
    tiny_vlm_spec: str,
    monkeypatch: pytest.MonkeyPatch,
    release_builds: list[GatedBuild],
) -> None:
    gated_build = _register(monkeypatch, "gated-vlm", Path(tiny_vlm_spec.removeprefix("local:")))
    release_builds.append(gated_build)
    first_run = _settings(settings, tmp_path, vlm="fixture:gated-vlm")
    with LiveServer(first_run) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        image_id = _upload(client)
        started = time.monotonic()
        refused = client.post("/v1/caption", json={"image_id": image_id})
        assert time.monotonic() - started < 1.0
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "fixture gated-vlm is being built: 25% done" in refused.json()["detail"]

        ready = client.get("/readyz")
        assert ready.status_code == 200  # search is ready: the embedder is not being built
        body = ready.json()
        assert body["tools"]["caption"] == body["tools"]["vqa"] == "building"
        assert body["tools"]["ground"] == "ok"  # another model, not being built
        assert body["builds"]["gated-vlm"]["state"] == "building"
        assert body["builds"]["gated-vlm"]["progress"] == 0.25

        gated_build.release.set()
        body = _wait_for_state(client, "gated-vlm", "ready")
        assert body["tools"]["caption"] == "ok"
        assert body["builds"]["gated-vlm"]["progress"] == 1.0
        answered = client.post("/v1/caption", json={"image_id": image_id})
        assert answered.status_code == 200, answered.text
        assert isinstance(answered.json()["caption"], str)


def test_a_failed_build_says_why_in_readyz_and_in_the_503(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    release_builds: list[GatedBuild],
) -> None:
    gated_build = _register(monkeypatch, "gated-grounding", None)
    release_builds.append(gated_build)
    gated_build.release.set()  # fails as soon as it runs
    first_run = _settings(settings, tmp_path, grounding="fixture:gated-grounding")
    with LiveServer(first_run) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        image_id = _upload(client)
        body = _wait_for_state(client, "gated-grounding", "failed")
        reason = (
            "fixture gated-grounding could not be built: RuntimeError('no space left on device')"
        )
        assert body["tools"]["ground"] == reason
        assert body["builds"]["gated-grounding"]["detail"] == reason
        refused = client.post("/v1/ground", json={"image_id": image_id, "phrases": ["a square"]})
        assert refused.status_code == 503
        assert refused.json()["detail"] == reason
        assert "retry-after" in refused.headers


def test_search_waits_for_a_building_embedder_without_blocking_the_server(
    settings: Settings,
    tmp_path: Path,
    tiny_clip_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    release_builds: list[GatedBuild],
) -> None:
    gated_build = _register(monkeypatch, "gated-clip", tiny_clip_dir)
    release_builds.append(gated_build)
    first_run = _settings(settings, tmp_path, embedder="fixture:gated-clip")
    with LiveServer(first_run) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        started = time.monotonic()
        refused = client.post("/v1/search", json={"text": "a red square"})
        assert time.monotonic() - started < 1.0
        assert refused.status_code == 503
        assert "fixture gated-clip is being built" in refused.json()["detail"]
        assert "retry-after" in refused.headers
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert "fixture gated-clip is being built" in not_ready.json()["checks"]["embedder"]

        gated_build.release.set()
        _wait_for_state(client, "gated-clip", "ready")
        assert client.get("/readyz").status_code == 200
        image_id = _upload(client)
        found = client.post("/v1/search", json={"text": "a red square"})
        assert found.status_code == 200, found.text
        assert [hit["id"] for hit in found.json()["results"]] == [image_id]
