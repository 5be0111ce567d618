"""The bot's side of one conversation: messages, updates, ephemeral notes and uploads, all
through ``slack_sdk.WebClient`` (pointed at ``MMRAG_SLACK__API_URL``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from mmrag.slack.render import Blocks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    """Where a request came from: the workspace (the tenant), the channel, who asked and the
    thread the bot answers in (``None`` until the bot's first message starts one)."""

    team: str
    channel: str
    user: str
    thread_ts: str | None = None

    @property
    def tenant(self) -> str:
        return f"slack:{self.team}"

    def in_thread(self, thread_ts: str) -> Place:
        return Place(self.team, self.channel, self.user, thread_ts)

    @property
    def conversation(self) -> str:
        """The agent's thread id: one conversation per Slack thread, per workspace."""
        assert self.thread_ts is not None
        return f"slack:{self.team}:{self.channel}:{self.thread_ts}"


@dataclass(frozen=True)
class Upload:
    filename: str
    title: str
    content: bytes


class Poster:
    def __init__(self, client: WebClient, place: Place) -> None:
        self.client = client
        self.place = place

    def post(self, text: str, blocks: Blocks | None = None) -> str:
        """A message in the place's thread (or a new top-level one); its ``ts``."""
        response = self.client.chat_postMessage(
            channel=self.place.channel,
            text=text,
            blocks=blocks,
            thread_ts=self.place.thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    def update(self, ts: str, text: str, blocks: Blocks | None = None) -> None:
        self.client.chat_update(channel=self.place.channel, ts=ts, text=text, blocks=blocks or [])

    def ephemeral(self, text: str) -> None:
        """A note only the asker sees (refusals and errors)."""
        self.client.chat_postEphemeral(
            channel=self.place.channel,
            user=self.place.user,
            text=text,
            thread_ts=self.place.thread_ts,
        )

    def upload(self, uploads: Sequence[Upload], comment: str) -> None:
        """Files in the thread, in one files.getUploadURLExternal / completeUploadExternal
        round per file set."""
        if not uploads:
            return
        files: list[dict[str, Any]] = [
            {"content": upload.content, "filename": upload.filename, "title": upload.title}
            for upload in uploads
        ]
        self.client.files_upload_v2(
            file_uploads=files,
            channel=self.place.channel,
            thread_ts=self.place.thread_ts,
            initial_comment=comment,
        )
