"""What the bot has seen survives a restart: an event Slack delivers again after the API
came back is not done a second time."""

from __future__ import annotations

import time

import httpx
from api.live_server import LiveServer
from slackbot.harness import CHANNEL, Bot, mention, slack_settings

from mmrag.config import Settings
from mmrag.testing.fake_slack import TEAM, FakeSlackServer
from mmrag.testing.slack_signing import event_body


def test_an_event_seen_before_a_restart_is_not_done_again(settings: Settings) -> None:
    with FakeSlackServer() as fake:
        configured = Settings.model_validate(
            {**settings.model_dump(exclude={"slack"}), "slack": slack_settings(fake)}
        )
        body, headers = event_body(mention("find a red circle", "1700003000.0001"), "EvONCE", TEAM)
        for attempt in range(2):
            with LiveServer(configured) as server, httpx.Client(base_url=server.url) as http:
                bot = Bot(server, http, fake, {}, {})
                if attempt:
                    time.sleep(1.1)  # a retry is signed at a later second: not a replay
                retry = {"X-Slack-Retry-Num": str(attempt)} if attempt else {}
                assert bot.send(body, headers, **retry).status_code == 200
                if attempt == 0:
                    fake.wait_for(
                        lambda f: [c for c in f.of("chat.update") if c.args.get("blocks")]
                    )
                else:
                    time.sleep(1.5)
        working = [c for c in fake.of("chat.postMessage") if c.args["channel"] == CHANNEL]
        assert len(working) == 1
