"""What the bot does once Slack has its ack: search, ask, index shared images, report jobs.

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
from mmrag.errors import MmragError, Unavailable
from mmrag.retrieval.decode import decode_image
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.search import SearchQuery
from mmrag.services import Services
from mmrag.slack import commands, render
from mmrag.slack.boxes import DrawnBox, draw_boxes
from mmrag.slack.files import SlackFile, SlackFiles
from mmrag.slack.poster import Place, Poster, Upload
from mmrag.workers.jobs.records import UNFINISHED
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import CaptionTask, DetectTask, IndexedSource, JobSpec, JobTask

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+(\|[^>]*)?>")
SEARCH_LIMIT = 5
# The "working on it" message is updated at most this often while the agent runs.
PROGRESS_EVERY_S = 0.5


def question_of(text: str) -> str:
    """A mention's text without the mention itself."""
    return " ".join(_MENTION.sub(" ", text).split())


class SlackBot:
    def __init__(
        self, services: Services, settings: SlackSettings, jobs: JobService | None = None
    ) -> None:
        self.services = services
        self.settings = settings
        self.jobs = jobs
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="slack")
        # Jobs are watched on threads of their own: a long job must not hold a question's.
        self._watchers = ThreadPoolExecutor(8, thread_name_prefix="slack-jobs")
        self._closing = threading.Event()
        schemes = ("https", "http") if settings.api_url.startswith("http://") else ("https",)
        self.files = SlackFiles(
            settings.file_hosts,
            min(settings.max_file_bytes, services.settings.limits.max_image_bytes),
            services.settings.limits.url_timeout_s,
            schemes,
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
        poster = Poster(client, place)
        try:
            results = self.services.search_for(
                place.tenant, SearchQuery(text=text, limit=SEARCH_LIMIT)
            )
        except MmragError as error:
            poster.ephemeral(render.failure(error.detail))
            return
        hits = [
            (
                hit.image_id,
                hit.score,
                str(hit.payload.get("caption") or hit.payload.get("model_caption", "")),
            )
            for hit in results.hits
        ]
        summary, blocks = render.search_blocks(text, hits)
        ts = poster.post(summary, blocks)
        shown = hits[: self.settings.max_images]
        uploads = [self._thumbnail(rank, *hit) for rank, hit in enumerate(shown, start=1)]
        Poster(client, place.in_thread(place.thread_ts or ts)).upload(
            uploads, f"The top {len(uploads)}, best first."
        )

    def _thumbnail(self, rank: int, image_id: str, score: float, caption: str) -> Upload:
        payload = self.services.image(image_id)
        data = self.services.blobs.read("thumbnail", payload["sha256"])
        extension = "webp" if data[:4] == b"RIFF" else "jpg"
        title = f"{rank}. score {score:.3f}" + (f" · {caption[:120]}" if caption else "")
        return Upload(f"{rank}-{image_id}.{extension}", title, data)

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
                self.annotate(client, place, parsed, shared)
            else:
                poster.ephemeral(render.help_text(getattr(parsed, "problem", None)))
            return
        image_ids = self.index_files(client, place, shared)
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
        place = place.in_thread(place.thread_ts or ts)
        poster = Poster(client, place)
        agent = self.services.agent()
        events: list[tuple[str, dict[str, Any]]] = []
        result: dict[str, Any] | None = None
        shown_at = 0.0
        try:
            stream = agent.stream(
                question, image_id, place.conversation, place.tenant, place.tenant
            )
            for event, data in stream:
                if event == "answer":
                    result = data
                elif event != "token":
                    events.append((event, data))
                    now = time.monotonic()
                    if now - shown_at >= PROGRESS_EVERY_S or event == "plan":
                        poster.update(ts, render.progress(question, events))
                        shown_at = now
        except MmragError as error:
            poster.update(ts, render.failure(error.detail))
            return
        assert result is not None
        text, blocks = render.answer_blocks(result, asked)
        poster.update(ts, text, blocks)
        uploads, comment = self._evidence(result["citations"])
        poster.upload(uploads, comment)

    def _evidence(self, citations: Sequence[Mapping[str, Any]]) -> tuple[list[Upload], str]:
        """Images that show what the answer rests on: each cited image with its boxes drawn
        when the answer grounded or detected something, else the cited images' thumbnails."""
        boxed: dict[str, list[DrawnBox]] = {}
        for citation in citations:
            if "box" in citation:
                box = DrawnBox(
                    str(citation.get("label", "")),
                    float(citation.get("score", 0.0)),
                    tuple(float(v) for v in citation["box"]),  # type: ignore[arg-type]
                )
                boxed.setdefault(str(citation["image_id"]), []).append(box)
        if boxed:
            uploads = [
                self._drawn(image_id, boxes)
                for image_id, boxes in list(boxed.items())[: self.settings.max_images]
            ]
            return uploads, "Where I found it:"
        cited = list(dict.fromkeys(str(c["image_id"]) for c in citations))
        scores = {str(c["image_id"]): float(c.get("score", 0.0)) for c in citations}
        uploads = []
        for rank, image_id in enumerate(cited[: self.settings.max_images], start=1):
            caption = str(self.services.image(image_id).get("caption", ""))
            uploads.append(self._thumbnail(rank, image_id, scores[image_id], caption))
        return uploads, "The images I used:"

    def _drawn(self, image_id: str, boxes: Sequence[DrawnBox]) -> Upload:
        payload = self.services.image(image_id)
        original = self.services.blobs.read("original", payload["sha256"])
        image = decode_image(original, self.services.settings.limits).image
        labels = ", ".join(dict.fromkeys(box.label for box in boxes))
        return Upload(f"boxes-{image_id}.png", f"{labels} in {image_id}", draw_boxes(image, boxes))

    # -- files shared in Slack ------------------------------------------------------------------

    def index_files(
        self, client: WebClient, place: Place, shared: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Download the images shared with the request and index them for the workspace;
        their ids, in order. A refused file is named to the asker, ephemerally."""
        token = client.token
        assert token is not None, "Bolt sets the workspace's token before any listener runs"
        items: list[IngestItem] = []
        refusals: list[str] = []
        for entry in shared:
            try:
                found = SlackFile.from_event(entry)
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
            report = self.services.ingest_for(place.tenant, items)
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

    # -- bulk jobs ------------------------------------------------------------------------------

    def job_service(self) -> JobService:
        if self.jobs is None:
            raise Unavailable("bulk jobs run only in `mmrag serve`, not in this process")
        return self.jobs

    def status(self, place: Place, job_id: str) -> str:
        """A job's status line, for this workspace's jobs only."""
        status = self.job_service().status(job_id, place.tenant)
        return render.job_status(job_id, status.state, status.settled, status.total, status.counts)

    def annotate(
        self,
        client: WebClient,
        place: Place,
        command: commands.Annotate,
        shared: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Index the files that came with the request (else the channel's last N images) for
        the workspace, run a bulk job on them, and post its progress and end in a thread."""
        poster = Poster(client, place)
        try:
            jobs = self.job_service()
        except MmragError as error:
            poster.ephemeral(render.failure(error.detail))
            return
        files = list(shared) or self._recent_images(client, place.channel, command.last)
        image_ids = list(dict.fromkeys(self.index_files(client, place, files)))
        if not image_ids:
            poster.ephemeral(render.failure("I found no images to annotate here"))
            return
        tasks: list[JobTask] = []
        if command.caption:
            tasks.append(CaptionTask(task="caption"))
        if command.detect:
            tasks.append(DetectTask(task="detect", labels=list(command.detect)))
        spec = JobSpec(source=IndexedSource(kind="indexed", ids=image_ids), tasks=tasks)
        try:
            job = jobs.submit(spec, tenant=place.tenant)
        except MmragError as error:
            poster.ephemeral(render.failure(error.detail))
            return
        ts = poster.post(render.job_started(job.id, len(image_ids), spec.task_names()))
        thread = Poster(client, place.in_thread(place.thread_ts or ts))
        self.submit("job progress", lambda: self._watch(jobs, thread, job.id), self._watchers)

    def _recent_images(self, client: WebClient, channel: str, last: int) -> list[Mapping[str, Any]]:
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

    def _watch(self, jobs: JobService, poster: Poster, job_id: str) -> None:
        """Post the job's progress every ``job_progress_s`` while it moves, then its end."""
        tenant = poster.place.tenant
        shown = -1
        while not self._closing.wait(self.settings.job_progress_s):
            status = jobs.status(job_id, tenant)
            if status.state not in UNFINISHED:
                export = f"/v1/jobs/{job_id}/export?format=coco"
                if self.settings.public_url:
                    export = self.settings.public_url.rstrip("/") + export
                poster.post(render.job_finished(job_id, status.state, status.counts, export))
                return
            if status.settled != shown:
                shown = status.settled
                poster.post(render.job_progress(job_id, shown, status.total, status.counts))
