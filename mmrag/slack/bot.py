"""What the bot does once Slack has its ack: search, answer questions, start and watch jobs.

Every piece runs on the bot's own thread pool, never in the request that Slack waits on, and
calls the same service functions the REST API does, scoped to the workspace (the tenant).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from mmrag.config import SlackSettings
from mmrag.errors import MmragError
from mmrag.retrieval.search import SearchQuery
from mmrag.services import Services
from mmrag.slack import commands, render
from mmrag.slack.evidence import Evidence, caption_of
from mmrag.slack.intake import Intake
from mmrag.slack.jobs import SlackJobs
from mmrag.slack.poster import Place, Poster
from mmrag.workers.jobs.service import JobService

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+(\|[^>]*)?>")
SEARCH_LIMIT = 5
# The "working on it" message is updated at most this often while the agent runs (chat.update
# allows about one call a second per channel); the plan is always shown at once.
PROGRESS_EVERY_S = 1.0


def question_of(text: str) -> str:
    """A mention's text without the mention itself."""
    return " ".join(_MENTION.sub(" ", text).split())


class SlackBot:
    def __init__(
        self, services: Services, settings: SlackSettings, jobs: JobService | None = None
    ) -> None:
        self.services = services
        self.settings = settings
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="slack")
        # Jobs are watched on threads of their own: a long job must not hold a question's.
        self._watchers = ThreadPoolExecutor(8, thread_name_prefix="slack-jobs")
        self._closing = threading.Event()
        self.intake = Intake(services, settings)
        self.evidence = Evidence(services, settings.max_images)
        self.jobs = SlackJobs(
            jobs,
            settings,
            self.intake,
            self._closing,
            lambda watch: self.submit("job progress", watch, self._watchers),
        )

    def close(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._watchers.shutdown(wait=True, cancel_futures=True)

    def submit(
        self, what: str, work: Callable[[], None], pool: ThreadPoolExecutor | None = None
    ) -> Future[None]:
        """Run ``work`` after the ack; a failure is logged, never raised into Bolt."""

        def guarded() -> None:
            try:
                work()
            except SlackApiError as error:
                log.error(
                    "slack %s: the Web API refused a call: %s", what, error.response.get("error")
                )
            except Exception:
                log.exception("slack %s failed", what)

        return (pool or self._pool).submit(guarded)

    # -- search -------------------------------------------------------------------------------

    def search(self, client: WebClient, place: Place, text: str) -> None:
        query = SearchQuery(text=text, limit=SEARCH_LIMIT)
        self._results(Poster(client, place), query, f"_{render.quoted(text)}_")

    def more_like(self, client: WebClient, place: Place, image_id: str) -> None:
        """The "More like this" button: the images most like one result, in its thread."""
        query = SearchQuery(image_id=image_id, limit=SEARCH_LIMIT)
        self._results(Poster(client, place), query, f"images like `{image_id}`")

    def _results(self, poster: Poster, query: SearchQuery, wanted: str) -> None:
        place, client = poster.place, poster.client
        try:
            results = self.services.search_for(place.tenant, query)
        except MmragError as error:
            poster.ephemeral(render.failure(error.detail))
            return
        hits = [(hit.image_id, hit.score, caption_of(hit.payload)) for hit in results.hits]
        summary, blocks = render.search_blocks(wanted, hits)
        ts = poster.post(summary, blocks)
        shown = hits[: self.settings.max_images]
        uploads = [
            self.evidence.thumbnail(rank, *hit, place.tenant)
            for rank, hit in enumerate(shown, start=1)
        ]
        Poster(client, place.in_thread(place.thread_ts or ts)).upload(
            uploads, f"The top {len(uploads)}, best first."
        )

    # -- ask ----------------------------------------------------------------------------------

    def mention(
        self, client: WebClient, place: Place, text: str, shared: Sequence[Mapping[str, Any]]
    ) -> None:
        """A mention or a direct message: index what came with it, then answer the question
        (about the first image that came with it, if any) in the thread."""
        poster = Poster(client, place)
        question = question_of(text)
        if question.lower().startswith("annotate"):
            parsed = commands.parse(question)
            if isinstance(parsed, commands.Annotate):
                self.jobs.annotate(client, place, parsed, shared)
            else:
                poster.ephemeral(render.help_text(getattr(parsed, "problem", None)))
            return
        image_ids = self.intake.index(client, place, shared)
        if not question:
            if image_ids:
                poster.post(f"Indexed {len(image_ids)} image(s) for this workspace.")
            else:
                poster.ephemeral(render.help_text("Ask me something"))
            return
        if shared and not image_ids:
            return  # every file was refused, and the asker was told why
        self.ask(client, place, question, image_ids[0] if image_ids else None)

    def ask(
        self, client: WebClient, place: Place, question: str, image_id: str | None = None
    ) -> None:
        """Answer in ``place``'s thread; with no thread yet, the bot's message starts one."""
        poster = Poster(client, place)
        ts = poster.post(render.working(question))
        asked = None if place.thread_ts else question
        poster = Poster(client, place.in_thread(place.thread_ts or ts))
        result = self._answer(poster, ts, question, image_id)
        if result is None:
            return
        text, blocks = render.answer_blocks(result, asked, place.user)
        poster.update(ts, text, blocks)
        uploads, comment = self.evidence.for_citations(result["citations"], poster.place.tenant)
        poster.upload(uploads, comment)

    def answer_proposal(
        self, client: WebClient, place: Place, ts: str, asker: str, confirm: bool
    ) -> None:
        """A "Start job" or "Don't" click on the proposal in message ``ts``: the agent's
        thread is the workspace's, so only the person who asked may answer for it."""
        poster = Poster(client, place)
        if place.user != asker:
            poster.ephemeral(render.not_your_proposal(asker))
            return
        try:
            # Answered already (a second click): say so, and leave the message as it is.
            self.services.agent().check_pending(place.conversation, place.tenant, place.tenant)
        except MmragError as error:
            poster.ephemeral(render.failure(error.detail))
            return
        question = render.proposal_answer(confirm)
        poster.update(ts, render.working(question))  # the buttons go: no second answer
        result = self._answer(poster, ts, question, None, confirm)
        if result is None:
            return
        text, blocks = render.answer_blocks(result)
        poster.update(ts, text, blocks)
        job_id = render.started_job(result)
        if job_id is not None and self.jobs.available:
            self.submit("job progress", lambda: self.jobs.watch(poster, job_id), self._watchers)

    def _answer(
        self,
        poster: Poster,
        ts: str,
        question: str,
        image_id: str | None,
        confirm: bool | None = None,
    ) -> dict[str, Any] | None:
        """Run the agent in the poster's thread, showing its progress in message ``ts``; the
        answer, or None when it failed (the message then says so)."""
        place = poster.place
        events: list[tuple[str, dict[str, Any]]] = []
        result: dict[str, Any] | None = None
        shown_at = 0.0
        try:
            agent = self.services.agent()
            # The conversation is the workspace's (owner and tenant): threads are per Slack
            # thread, and answering a proposal is limited to its asker in answer_proposal.
            stream = agent.stream(
                question, image_id, place.conversation, place.tenant, place.tenant, confirm
            )
            for event, data in stream:
                if event == "answer":
                    result = data
                elif event != "token":
                    events.append((event, data))
                    now = time.monotonic()
                    if now - shown_at >= PROGRESS_EVERY_S or event == "plan":
                        self._progress(poster, ts, render.progress(question, events))
                        shown_at = now
        except MmragError as error:
            poster.update(ts, render.failure(error.detail))
            return None
        except Exception:
            # Never leave "working on it" standing: say it failed, log why.
            log.exception("answering in %s failed", place.channel)
            poster.update(ts, render.failure("something went wrong; it was logged"))
            return None
        if result is None:
            poster.update(ts, render.failure("the agent gave no answer"))
        return result

    @staticmethod
    def _progress(poster: Poster, ts: str, text: str) -> None:
        """A progress update is worth no more than itself: one Slack refuses (rate limited
        past the retries, the message deleted) is logged and the answer still comes."""
        try:
            poster.update(ts, text)
        except SlackApiError as error:
            log.warning("slack: a progress update was refused: %s", error.response.get("error"))
