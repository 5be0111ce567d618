"""Files shared in Slack are held to the workspace's storage quota, as API uploads are."""

from __future__ import annotations

from typing import Any, cast

import pytest
from slack_sdk import WebClient
from workers.shapes_scenes import held_out, png_of

from mmrag.config import Settings, SlackSettings
from mmrag.services import Services
from mmrag.slack.files import SlackFile
from mmrag.slack.intake import Intake
from mmrag.slack.poster import Place


class _Client:
    """The two things Intake.index uses of a WebClient."""

    token = "xoxb-test"

    def __init__(self) -> None:
        self.ephemeral: list[str] = []

    def chat_postEphemeral(self, **message: Any) -> None:  # noqa: N802 (Slack's name)
        self.ephemeral.append(str(message["text"]))


def test_files_past_the_workspaces_quota_are_refused_and_nothing_is_stored(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenancy = settings.tenancy.model_copy(update={"max_images": 1})
    services = Services.open(settings.model_copy(update={"tenancy": tenancy}))
    try:
        intake = Intake(services, SlackSettings())
        served = {f"F{index}": png_of(scene) for index, scene in enumerate(held_out(2))}

        def download(found: SlackFile, token: str) -> bytes:
            return served[found.file_id]

        monkeypatch.setattr(intake.files, "download", download)
        shared = [
            {
                "id": file_id,
                "name": f"{file_id}.png",
                "mimetype": "image/png",
                "url_private_download": f"https://files.slack.com/{file_id}.png",
            }
            for file_id in served
        ]
        client = _Client()
        ids = intake.index(cast(WebClient, client), Place("T1", "C1", "U1"), shared)
        assert ids == []
        [note] = client.ephemeral
        assert "quota of 1" in note
        assert services.scoped("slack:T1").store.count() == 0
    finally:
        services.close()
