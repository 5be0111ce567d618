"""Many workspaces: the OAuth install flow, the SQLite installation store, and each
workspace seeing only its own images."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api.live_server import LiveServer
from slackbot.harness import CHANNEL, HUMAN, Bot, content_id, mention, slack_settings
from workers.shapes_scenes import held_out, png_of

from mmrag.config import Settings
from mmrag.testing.fake_slack import OAUTH_CLIENT_ID, OAUTH_SECRET, FakeSlack, FakeSlackServer
from mmrag.testing.redis_server import RedisServer


@pytest.fixture(params=["sqlite", "redis"])
def installations_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """Where installations live: SQLite in the data dir, or a real Redis on loopback."""
    if request.param == "sqlite":
        yield None
        return
    with RedisServer(tmp_path / "redis") as server:
        yield server.url


@pytest.fixture
def oauth_bot(settings: Settings, installations_url: str | None) -> Iterator[Bot]:
    with FakeSlackServer() as fake:
        slack = slack_settings(
            fake,
            bot_token=None,
            client_id=OAUTH_CLIENT_ID,
            client_secret=OAUTH_SECRET,
            installations_url=installations_url,
        )
        configured = Settings.model_validate(
            {**settings.model_dump(exclude={"slack"}), "slack": slack}
        )
        with LiveServer(configured) as server, httpx.Client(base_url=server.url) as http:
            yield Bot(server, http, fake, {}, {})


def install(bot: Bot, team: str) -> httpx.Response:
    page = bot.http.get("/slack/install")
    assert page.status_code == 200
    state = re.search(r"state=([A-Za-z0-9_\-]+)", page.text)
    assert state is not None
    assert f"client_id={OAUTH_CLIENT_ID}" in page.text
    cookie = page.headers["set-cookie"].split(";")[0]
    return bot.http.get(
        "/slack/oauth_redirect",
        params={"code": team, "state": state.group(1)},
        headers={"Cookie": cookie},
    )


def share_in_dm(bot: Bot, team: str, scenes: list[Any], ts: str) -> list[str]:
    files = [bot.share(f"{team}-{s.seed}.png", png_of(s)) for s in scenes]
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": f"D{team}",
        "user": HUMAN,
        "text": "",
        "ts": ts,
        "subtype": "file_share",
        "files": files,
    }
    assert bot.event(event, team=team).status_code == 200
    bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.postMessage") if c.args["channel"] == f"D{team}"]
    )
    return [content_id(png_of(s)) for s in scenes]


def searched(fake: FakeSlack, token: str) -> set[str]:
    calls = [c for c in fake.of("chat.postMessage") if c.token == token and "Top" in c.args["text"]]
    return set(re.findall(r"`([0-9a-f]{32})`", json.dumps(calls[-1].args["blocks"])))


def test_installed_workspaces_each_see_only_their_own_images(oauth_bot: Bot) -> None:
    bot = oauth_bot
    assert install(bot, "T0FIRST01").status_code == 200
    assert install(bot, "T0SECOND1").status_code == 200
    assert [c.args["client_secret"] for c in bot.fake.of("oauth.v2.access")] == [OAUTH_SECRET] * 2
    pool = held_out(6)
    first = share_in_dm(bot, "T0FIRST01", pool[:3], "1700001000.000001")
    second = share_in_dm(bot, "T0SECOND1", pool[3:], "1700001000.000002")

    assert bot.command("search a red circle", team="T0FIRST01").status_code == 200
    assert bot.command("search a red circle", team="T0SECOND1").status_code == 200
    bot.fake.wait_for(
        lambda f: len([c for c in f.of("chat.postMessage") if "Top" in c.args["text"]]) >= 2
    )
    assert searched(bot.fake, "xoxb-installed-T0FIRST01") <= set(first)
    assert searched(bot.fake, "xoxb-installed-T0SECOND1") <= set(second)
    assert searched(bot.fake, "xoxb-installed-T0FIRST01")
    # A question that names another workspace's image: the agent never takes ids from text,
    # and its retrieval sees only this workspace's images.
    question = mention(f"describe image {first[0]} and show me a red circle", "1700001100.0001")
    assert bot.event(question, team="T0SECOND1").status_code == 200
    answer = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.update") if c.args.get("blocks")], timeout=120
    )[0]
    cited = set(re.findall(r"\[([0-9a-f]{32})\]", answer.args["text"]))
    assert cited
    assert cited <= set(second)
    # Each workspace's messages went out with its own bot token.
    tokens = {c.token for c in bot.fake.of("chat.postMessage") if c.args["channel"] == CHANNEL}
    assert tokens == {"xoxb-installed-T0FIRST01", "xoxb-installed-T0SECOND1"}


def test_a_workspace_that_never_installed_gets_nothing(oauth_bot: Bot) -> None:
    bot = oauth_bot
    assert install(bot, "T0FIRST01").status_code == 200
    response = bot.event(mention("find a red circle", "1700002000.000001"), team="T0NEVER01")
    assert response.status_code == 200
    refused = bot.command("search a red circle", team="T0NEVER01")
    assert refused.status_code == 200
    bot.fake.wait_for(lambda f: f.of("response_url"))
    assert not bot.fake.of("chat.postMessage")


def test_an_install_with_a_forged_state_is_refused(oauth_bot: Bot) -> None:
    response = oauth_bot.http.get(
        "/slack/oauth_redirect", params={"code": "T0FIRST01", "state": "forged"}
    )
    assert response.status_code == 400
    assert not oauth_bot.fake.of("oauth.v2.access")
