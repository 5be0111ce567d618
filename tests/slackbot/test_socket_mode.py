"""``mmrag slack``'s runner against a local WebSocket server that plays Socket Mode, with
the fake Web API handing out its URL from ``apps.connections.open``."""

from __future__ import annotations

import time

from slackbot.fake_socket import FakeSocketSlack
from slackbot.harness import CHANNEL, HUMAN, slack_settings

from mmrag.config import Settings
from mmrag.slack.socket_mode import SocketModeRunner
from mmrag.testing.fake_slack import APP_TOKEN, BOT_USER, TEAM, FakeSlackServer


def test_envelopes_are_acknowledged_and_answered(settings: Settings) -> None:
    with FakeSlackServer() as fake, FakeSocketSlack() as socket:
        fake.socket_url = socket.url
        configured = Settings.model_validate(
            {
                **settings.model_dump(exclude={"slack"}),
                "slack": slack_settings(fake, app_token=APP_TOKEN),
            }
        )
        runner = SocketModeRunner(configured)
        try:
            runner.connect()
            assert socket.connected.wait(30)
            assert fake.of("apps.connections.open")[0].token == APP_TOKEN

            # A slash command: its ack carries the (ephemeral) help as the response payload.
            command = {
                "command": "/mmrag",
                "text": "bogus",
                "team_id": TEAM,
                "channel_id": CHANNEL,
                "user_id": HUMAN,
                "response_url": f"{fake.url}/respond",
            }
            envelope = socket.send("slash_commands", command, accepts_response=True)
            ack = socket.ack_for(envelope)
            assert "unknown command `bogus`" in ack["payload"]["text"]

            # A mention: acknowledged at once, answered in the thread through the Web API.
            event = {
                "type": "app_mention",
                "user": HUMAN,
                "text": f"<@{BOT_USER}> find a red circle",
                "ts": "1700000900.000900",
                "channel": CHANNEL,
            }
            callback = {
                "type": "event_callback",
                "team_id": TEAM,
                "event_id": "EvSOCKET001",
                "event": event,
            }
            started = time.perf_counter()
            socket.ack_for(socket.send("events_api", callback))
            assert time.perf_counter() - started < 3
            answered = fake.wait_for(
                lambda f: [c for c in f.of("chat.update") if c.args.get("blocks")], timeout=60
            )
            working = fake.of("chat.postMessage")[0]
            assert working.args["thread_ts"] == "1700000900.000900"
            assert answered[0].args["ts"] == working.reply["ts"]
            # The same event again (a redelivery): acknowledged, not done twice.
            socket.ack_for(socket.send("events_api", callback))
            time.sleep(1)
            assert len(fake.of("chat.postMessage")) == 1
        finally:
            runner.close()
