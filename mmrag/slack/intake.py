"""Images shared in Slack, downloaded and indexed for the workspace they were shared in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient

from mmrag.config import SlackSettings
from mmrag.errors import MmragError, QuotaExceeded
from mmrag.retrieval.items import IngestItem
from mmrag.services import Services
from mmrag.slack import render
from mmrag.slack.files import SlackFile, SlackFiles
from mmrag.slack.poster import Place, Poster

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Intake:
    def __init__(self, services: Services, settings: SlackSettings) -> None:
        self.services = services
        # Plain HTTP only for a Web API that is plain HTTP on this machine (a fake Slack in
        # tests): anywhere else the bot token must never cross a network unencrypted.
        api = urlsplit(settings.api_url)
        local = api.scheme == "http" and api.hostname in LOOPBACK_HOSTS
        schemes = ("https", "http") if local else ("https",)
        self.files = SlackFiles(
            settings.file_hosts,
            min(settings.max_file_bytes, services.settings.limits.max_image_bytes),
            services.settings.limits.url_timeout_s,
            schemes,
        )

    def index(
        self, client: WebClient, place: Place, shared: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Download the shared images and index them for the workspace, with their Slack
        origin in the payload; their ids, in order. A refused file is named to the asker,
        ephemerally, with why."""
        token = client.token
        assert token is not None, "Bolt sets the workspace's token before any listener runs"
        items: list[IngestItem] = []
        refusals: list[str] = []
        for entry in shared:
            try:
                found = SlackFile.from_event(_described(client, entry))
                if not found.is_image:
                    refusals.append(f"{found.name}: not an image")
                    continue
                data = self.files.download(found, token)
            except MmragError as error:
                refusals.append(error.detail)
                continue
            origin = {"team": place.team, "channel": place.channel, "file": found.file_id}
            items.append(IngestItem.upload(data, found.name, metadata={"slack": origin}))
        ids: list[str] = []
        if items:
            try:
                report = self.services.ingest_for(place.tenant, items)
            except QuotaExceeded as error:  # the workspace's quota: none of them was stored
                refusals.append(error.detail)
            else:
                for result in report.results:
                    if result.image is not None:
                        ids.append(result.image.image_id)
                    else:
                        refusals.append(f"{result.source}: {result.reason}")
        if refusals:
            Poster(client, place).ephemeral(
                render.failure("I could not use: " + "; ".join(refusals))
            )
        return ids


def _described(client: WebClient, entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """The file as ``files.info`` describes it when the event left it out (Slack sends only
    the id, with ``file_access: check_file_info``, for files shared from elsewhere)."""
    if entry.get("url_private_download") or entry.get("url_private") or not entry.get("id"):
        return entry
    found: Mapping[str, Any] = client.files_info(file=str(entry["id"]))["file"]
    return found


def recent_images(client: WebClient, channel: str, last: int) -> list[Mapping[str, Any]]:
    """The channel's last ``last`` shared images, newest first."""
    found: list[Mapping[str, Any]] = []
    cursor: str | None = None
    while len(found) < last:
        page = client.conversations_history(channel=channel, limit=200, cursor=cursor)
        messages: list[dict[str, Any]] = page.get("messages", [])
        for message in messages:
            found.extend(f for f in message.get("files", []) if SlackFile.is_image_entry(f))
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if cursor is None:
            break
    return found[:last]
