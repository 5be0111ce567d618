"""The page tests' fixtures: a real server on loopback with the fixture models over a world of
shapes scenes whose ground truth is known, and one chromium for the session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest
from agents.conftest import clear_mmrag_env, world_settings
from api.live_server import LiveServer
from web.browser import launch
from workers.shapes_scenes import png_of

from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, ShapeScene, generate_world

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# Apart from the seeds the fixture evaluations, the other tests and the sample gallery use.
WORLD_SEED = HELD_OUT_SEEDS.start + 800_000_000
WORLD_SCENES = 48


@dataclass
class World:
    url: str
    client: httpx.Client
    scenes: dict[str, ShapeScene]  # image id -> its scene (the ground truth)


def upload_scenes(client: httpx.Client, scenes: list[ShapeScene]) -> list[str]:
    """Index the scenes, each with its first true caption (the grid shows captions)."""
    files = [("files", (f"scene-{scene.seed}.png", png_of(scene), "image/png")) for scene in scenes]
    captions = [scene.captions[0] for scene in scenes]
    response = client.post("/v1/images", files=files, data={"captions": captions})
    assert response.status_code == 201, response.text
    return [item["id"] for item in response.json()["items"]]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with launch() as found:
        yield found


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[World]:
    """The browser is asked for first: without one there is nothing to serve a page to."""
    with pytest.MonkeyPatch.context() as patch:
        clear_mmrag_env(patch)
        settings = world_settings(
            tmp_path_factory.mktemp("web-world") / "data", "fixture:shapes-vlm"
        )
        with (
            LiveServer(settings) as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            scenes = generate_world(WORLD_SCENES, seed=WORLD_SEED)
            ids = upload_scenes(client, scenes)
            yield World(server.url, client, dict(zip(ids, scenes, strict=True)))
