"""A live API with the Slack bot on, talking to a fake Slack on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from agents.conftest import clear_mmrag_env, world_settings
from api.live_server import LiveServer
from slackbot.harness import Bot, slack_settings
from workers.shapes_scenes import held_out, png_of

from mmrag.config import Settings
from mmrag.testing.fake_slack import FakeSlackServer


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, tiny_vlm_spec: str) -> Iterator[Bot]:
    with pytest.MonkeyPatch.context() as patch, FakeSlackServer() as fake:
        clear_mmrag_env(patch)
        base = world_settings(tmp_path_factory.mktemp("slack") / "data", tiny_vlm_spec)
        settings = Settings.model_validate(
            {**base.model_dump(exclude={"slack"}), "slack": slack_settings(fake)}
        )
        with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            mine, theirs = held_out(8), held_out(12)[8:]
            files = [("files", (f"{s.seed}.png", png_of(s), "image/png")) for s in theirs]
            response = http.post("/v1/images", files=files)
            assert response.status_code == 201, response.text
            outsiders = [item["id"] for item in response.json()["items"]]
            bot = Bot(server, http, fake, {}, dict(zip(outsiders, theirs, strict=True)))
            bot.index_in_dm(mine, "scene", "D0DIRECT01", "1600000000.000001")
            yield bot
