"""The Slack tests' harness: the bot's settings, a client that signs as Slack does, events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from api.live_server import LiveServer
from workers.shapes_scenes import png_of

from mmrag.config import SlackSettings
from mmrag.models.fixtures.shapes import ShapeScene
from mmrag.retrieval.decode import image_id_from_sha256, sha256_hex
from mmrag.testing.fake_slack import BOT_TOKEN, BOT_USER, TEAM, FakeSlack, Served
from mmrag.testing.slack_signing import SIGNING_SECRET, command_body, event_body, signed_headers

CHANNEL = "C0CHAN0001"
HUMAN = "U0HUMAN001"
MAX_FILE_BYTES = 200_000


def slack_settings(fake: FakeSlack, **overrides: Any) -> SlackSettings:
    fields: dict[str, Any] = {
        "signing_secret": SIGNING_SECRET,
        "bot_token": BOT_TOKEN,
        "api_url": f"{fake.url}/api/",
        "file_hosts": ["127.0.0.1"],
        "max_file_bytes": MAX_FILE_BYTES,
        "job_progress_s": 0.3,
        "public_url": "https://mmrag.example.com",
    }
    return SlackSettings.model_validate({**fields, **overrides})


@dataclass
class Bot:
    server: LiveServer
    http: httpx.Client
    fake: FakeSlack
    scenes: dict[str, ShapeScene]  # indexed from Slack: the workspace's own
    outsiders: dict[str, ShapeScene]  # indexed through the REST API: no workspace's
    serial: int = 0

    def next_id(self) -> str:
        self.serial += 1
        return f"Ev{self.serial:08d}"

    def send(self, body: bytes, headers: dict[str, str], **extra: str) -> httpx.Response:
        return self.http.post(
            "/slack/events", content=body, headers={**headers, **signed_headers(body), **extra}
        )

    def event(self, event: dict[str, Any], team: str = TEAM, **extra: str) -> httpx.Response:
        body, headers = event_body(event, self.next_id(), team)
        return self.send(body, headers, **extra)

    def command(self, text: str, team: str = TEAM) -> httpx.Response:
        body, headers = command_body(text, team, f"{self.fake.url}/respond")
        return self.send(body, headers)

    def share(self, name: str, data: bytes, **fields: Any) -> dict[str, Any]:
        """A file on the fake's hosts, and the event's description of it."""
        self.fake.files[name] = Served(data)
        return {
            "id": f"F{name.replace('.', '').replace('-', '')[:9].upper()}",
            "name": name,
            "mimetype": "image/png",
            "size": len(data),
            "url_private_download": self.fake.file_url(name),
            **fields,
        }

    def index_in_dm(self, scenes: list[ShapeScene], prefix: str, channel: str, ts: str) -> None:
        """The human shares ``scenes`` in a direct message; returns once the bot has said it
        indexed them all, with them recorded as the workspace's own (ids are content ids: the
        same bytes, the same id)."""
        shared = [self.share(f"{prefix}-{s.seed}.png", png_of(s)) for s in scenes]
        event = {
            "type": "message",
            "channel_type": "im",
            "channel": channel,
            "user": HUMAN,
            "text": "",
            "ts": ts,
            "subtype": "file_share",
            "files": shared,
        }
        assert self.event(event).status_code == 200
        indexed = f"Indexed {len(scenes)}"
        self.fake.wait_for(
            lambda f: any(indexed in c.args["text"] for c in f.of("chat.postMessage"))
        )
        self.scenes = {content_id(png_of(s)): s for s in scenes}


def content_id(data: bytes) -> str:
    return image_id_from_sha256(sha256_hex(data))


def mention(text: str, ts: str, thread_ts: str | None = None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": HUMAN,
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": CHANNEL,
        **fields,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event
