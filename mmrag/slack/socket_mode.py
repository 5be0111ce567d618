"""``mmrag slack``: the bot over Socket Mode, for workspaces that cannot expose a public URL.

Slack hands the bot a WebSocket URL (``apps.connections.open`` with the app-level token);
events and slash commands arrive there as envelopes, each acknowledged by its envelope id.
The same Bolt app and listeners as ``POST /slack/events`` handle them: only the transport
differs. This process opens the store itself, so it replaces ``mmrag serve`` on a data dir
(the embedded store is one process's), or runs beside it in the distributed mode.
"""

from __future__ import annotations

import logging
import threading

from slack_bolt.adapter.socket_mode import SocketModeHandler

from mmrag.config import Settings
from mmrag.errors import InvalidInput, MmragError
from mmrag.services import Services
from mmrag.slack.runtime import SlackRuntime
from mmrag.workers.jobs.service import JobService

log = logging.getLogger(__name__)


class SocketModeRunner:
    """Services, the job driver and the bot, connected to Slack until :meth:`close`."""

    def __init__(self, settings: Settings) -> None:
        slack = settings.slack
        if not slack.enabled:
            raise InvalidInput(
                "set MMRAG_SLACK__SIGNING_SECRET and MMRAG_SLACK__BOT_TOKEN to run the bot"
            )
        if slack.app_token is None:
            raise InvalidInput("Socket Mode needs MMRAG_SLACK__APP_TOKEN (xapp-...)")
        self.services = Services.open(settings)
        try:
            self.services.embedder()  # searches answer at once, not after a first-use load
        except MmragError as error:
            log.error("the embedder is not available: %s", error.detail)
        self.jobs = JobService.open(self.services)
        self.jobs.start()
        self.services.job_starter = self.jobs.submit_for_agent
        self.runtime = SlackRuntime(self.services, self.jobs)
        self.handler = SocketModeHandler(
            self.runtime.app, slack.app_token.get_secret_value(), logger=log
        )

    def connect(self) -> None:
        # Bolt's Socket Mode handler is not annotated.
        self.handler.connect()  # type: ignore[no-untyped-call]
        log.info("connected to Slack over Socket Mode")

    def close(self) -> None:
        self.handler.close()  # type: ignore[no-untyped-call]
        self.runtime.close()
        self.jobs.close()
        self.services.close()


def run_socket_mode(settings: Settings, stop: threading.Event | None = None) -> None:
    """Serve until ``stop`` is set (or the process is interrupted)."""
    runner = SocketModeRunner(settings)
    stop = stop or threading.Event()
    try:
        runner.connect()
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        runner.close()
