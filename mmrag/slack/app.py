"""The Bolt app: request verification, who the bot is in each workspace, and the listeners.

Listeners only parse, acknowledge and hand the work to :class:`~mmrag.slack.bot.SlackBot`'s
threads, so Slack gets its ack in milliseconds whatever the work costs.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from mmrag.config import SlackSettings
from mmrag.errors import MmragError
from mmrag.slack import commands, render
from mmrag.slack.bot import SlackBot
from mmrag.slack.dedupe import SeenStore
from mmrag.slack.installations import open_stores
from mmrag.slack.poster import Place

log = logging.getLogger(__name__)

# What the OAuth install asks for: mentions and DMs, posting and uploading, reading files
# shared with the bot, and channel history for `/mmrag annotate` over the last N images.
BOT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "im:history",
)
# Message subtypes that are people writing; edits, joins and bots' posts are not questions.
_HUMAN_SUBTYPES = (None, "file_share", "thread_broadcast")


@dataclass(frozen=True)
class Identity:
    team_id: str
    user_id: str
    bot_id: str | None


class SingleWorkspace:
    """``authorize`` for the one workspace whose bot token is in settings. Who the bot is
    comes from ``auth.test``, asked once, on the first request (never at start: the API
    starts without reaching Slack). Another workspace gets no authorization."""

    def __init__(self, client: WebClient, token: str) -> None:
        self._client = client
        self._token = token
        self._identity: Identity | None = None
        self._lock = threading.Lock()

    def identity(self) -> Identity:
        with self._lock:
            if self._identity is None:
                found = self._client.auth_test(token=self._token)
                self._identity = Identity(
                    str(found["team_id"]), str(found["user_id"]), found.get("bot_id")
                )
            return self._identity

    def authorize_function(self) -> Callable[[str | None, str | None], AuthorizeResult | None]:
        """A plain function: Bolt passes arguments by the names it finds in the signature."""

        def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult | None:
            return self.authorize(enterprise_id, team_id)

        return authorize

    def authorize(self, enterprise_id: str | None, team_id: str | None) -> AuthorizeResult | None:
        me = self.identity()
        if team_id != me.team_id:
            log.warning("slack: a request from workspace %s, which is not this bot's", team_id)
            return None
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=self._token,
            bot_user_id=me.user_id,
            bot_id=me.bot_id,
        )


def build_app(bot: SlackBot, settings: SlackSettings, seen: SeenStore, data_dir: Path) -> App:
    assert settings.signing_secret is not None, "SlackSettings refuses a bot without one"
    client = WebClient(base_url=settings.api_url)
    # chat.update is rate limited (about one a second per channel): on HTTP 429 the client
    # waits for Retry-After and tries again instead of dropping a progress update.
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    options: dict[str, Any] = {}
    if settings.oauth:
        assert settings.client_id is not None
        assert settings.client_secret is not None
        installations, states = open_stores(
            settings.client_id,
            data_dir,
            settings.installations_url.get_secret_value() if settings.installations_url else None,
        )
        options["oauth_settings"] = OAuthSettings(
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            scopes=list(BOT_SCOPES),
            installation_store=installations,
            state_store=states,
        )
    else:
        assert settings.bot_token is not None
        single = SingleWorkspace(client, settings.bot_token.get_secret_value())
        options["authorize"] = single.authorize_function()
    app = App(
        signing_secret=settings.signing_secret.get_secret_value(),
        client=client,
        token_verification_enabled=False,
        # The 200 goes out as soon as a listener acks (an event's at once), and the listeners
        # only hand the work to the bot's threads.
        process_before_response=False,
        **options,
    )
    app.use(_once(seen))
    if settings.oauth:
        # An uninstall or a revoked token deletes the workspace's installation from the store.
        app.enable_token_revocation_listeners()
    _listen(app, bot)
    return app


def _once(seen: SeenStore) -> Callable[..., BoltResponse | None]:
    """Middleware after Bolt's own checks: a replayed request (the same signature again) is
    refused with 401; an event delivered again (Slack's retries) is acknowledged and dropped."""

    def middleware(
        request: BoltRequest, body: dict[str, Any], next: Callable[[], None]
    ) -> BoltResponse | None:
        signature = request.headers.get("x-slack-signature", [None])[0]
        if request.mode == "http" and signature and not seen.first_time(f"sig:{signature}"):
            log.warning("slack: a replayed request was refused")
            return BoltResponse(status=401, body="replayed request")
        event_id = body.get("event_id")
        if isinstance(event_id, str) and not seen.first_time(f"event:{event_id}"):
            log.info("slack: event %s was already handled; ignored", event_id)
            return BoltResponse(status=200, body="")
        next()
        return None

    return middleware


def _listen(app: App, bot: SlackBot) -> None:
    @app.command("/mmrag")
    def slash(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        parsed = commands.parse(str(command.get("text", "")))
        place = Place(str(command["team_id"]), str(command["channel_id"]), str(command["user_id"]))
        match parsed:
            case commands.Help(problem=problem):
                ack(text=render.help_text(problem), response_type="ephemeral")
            case commands.Search(text=text):
                ack(text=f":mag: Searching for _{render.quoted(text)}_…", response_type="ephemeral")
                bot.submit("search", lambda: bot.search(client, place, text))
            case commands.Ask(question=question):
                ack()
                bot.submit("ask", lambda: bot.ask(client, place, question))
            case commands.Annotate() as annotate:
                ack(text=f":gear: Collecting this channel's last {annotate.last} images…")
                bot.submit("annotate", lambda: bot.jobs.annotate(client, place, annotate))
            case commands.Status(job_id=job_id):
                # One read of the job store: quick enough to answer in the ack itself.
                try:
                    ack(text=bot.jobs.status(place, job_id), response_type="ephemeral")
                except MmragError as error:
                    ack(text=render.failure(error.detail), response_type="ephemeral")

    @app.action(render.MORE_LIKE_THIS)
    def more_like(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        message = body.get("message") or {}
        thread = str(message.get("thread_ts") or message.get("ts") or "") or None
        place = Place(
            str(body["team"]["id"]), str(body["channel"]["id"]), str(body["user"]["id"]), thread
        )
        image_id = str(action.get("value", ""))
        bot.submit("more like this", lambda: bot.more_like(client, place, image_id))

    def proposal(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        message = body.get("message") or {}
        ts = str(message.get("ts", ""))
        thread = str(message.get("thread_ts") or ts)
        place = Place(
            str(body["team"]["id"]), str(body["channel"]["id"]), str(body["user"]["id"]), thread
        )
        confirm = action.get("action_id") == render.START_JOB
        asker = str(action.get("value", ""))
        bot.submit("job proposal", lambda: bot.answer_proposal(client, place, ts, asker, confirm))

    for action_id in (render.START_JOB, render.DROP_JOB):
        app.action(action_id)(proposal)

    @app.event("app_mention")
    def mentioned(event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        _on_message(bot, event, context, client)

    @app.event("message")
    def message(event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        # Only direct messages: a mention in a channel arrives as app_mention as well.
        if event.get("channel_type") == "im":
            _on_message(bot, event, context, client)

    @app.event(re.compile(".*"))
    def anything_else(event: dict[str, Any]) -> None:
        # Registered last: an event type the bot has no use for still gets its 200, since
        # Slack retries failures and turns off the subscriptions of an app that keeps failing.
        log.debug("slack: ignored a %s event", event.get("type"))


def _on_message(
    bot: SlackBot, event: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    if event.get("bot_id") or event.get("subtype") not in _HUMAN_SUBTYPES:
        return  # bots (this one included) never start work: no loops
    if not event.get("user") or not context.team_id:
        return
    thread = str(event.get("thread_ts") or event["ts"])
    place = Place(str(context.team_id), str(event["channel"]), str(event["user"]), thread)
    shared = list(event.get("files", []))
    text = str(event.get("text", ""))
    bot.submit("mention", lambda: bot.mention(client, place, text, shared))
