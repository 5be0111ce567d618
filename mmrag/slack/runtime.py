"""The bot's parts, built once from settings: opened by the API's lifespan and by
``mmrag slack`` (Socket Mode), closed with them."""

from __future__ import annotations

from slack_bolt import App

from mmrag.services import Services
from mmrag.slack.app import build_app
from mmrag.slack.bot import SlackBot
from mmrag.slack.dedupe import SeenStore
from mmrag.workers.jobs.service import JobService


class SlackRuntime:
    def __init__(self, services: Services, jobs: JobService | None = None) -> None:
        settings = services.settings.slack
        directory = services.settings.slack_dir
        self.seen = SeenStore(directory / "seen.sqlite")
        self.bot = SlackBot(services, settings, jobs)
        self.app: App = build_app(self.bot, settings, self.seen, directory)

    @classmethod
    def open(cls, services: Services, jobs: JobService | None = None) -> SlackRuntime | None:
        """The runtime, or None while no signing secret is configured (the bot is off)."""
        return cls(services, jobs) if services.settings.slack.enabled else None

    def close(self) -> None:
        self.bot.close()
        self.seen.close()
