"""The bot's parts, built once from settings: opened by the API's lifespan and by
``mmrag slack`` (Socket Mode), closed with them."""

from __future__ import annotations

from slack_bolt import App

from mmrag.services import Services
from mmrag.slack.app import build_app
from mmrag.slack.bot import SlackBot
from mmrag.slack.dedupe import SeenStore


class SlackRuntime:
    def __init__(self, services: Services) -> None:
        settings = services.settings.slack
        directory = services.settings.slack_dir
        self.seen = SeenStore(directory / "seen.sqlite")
        self.bot = SlackBot(services, settings)
        self.app: App = build_app(self.bot, settings, self.seen, directory)

    @classmethod
    def open(cls, services: Services) -> SlackRuntime | None:
        """The runtime, or None while no signing secret is configured (the bot is off)."""
        return cls(services) if services.settings.slack.enabled else None

    def close(self) -> None:
        self.bot.close()
        self.seen.close()
