"""Bulk jobs from Slack: ``/mmrag annotate`` runs one over the workspace's images and posts
its progress and end in a thread; ``/mmrag status`` reads one of the workspace's jobs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slack_sdk import WebClient

from mmrag.config import SlackSettings
from mmrag.errors import MmragError, Unavailable
from mmrag.slack import commands, render
from mmrag.slack.intake import Intake, recent_images
from mmrag.slack.poster import Place, Poster
from mmrag.workers.jobs.records import UNFINISHED
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.spec import CaptionTask, DetectTask, IndexedSource, JobSpec, JobTask


class SlackJobs:
    def __init__(
        self,
        jobs: JobService | None,
        settings: SlackSettings,
        intake: Intake,
        closing: threading.Event,
        in_background: Callable[[Callable[[], None]], object],
    ) -> None:
        self._jobs = jobs
        self._settings = settings
        self._intake = intake
        self._closing = closing  # set when the bot stops: watching ends
        self._in_background = in_background  # runs a job's watch on a thread of its own

    @property
    def available(self) -> bool:
        """Whether jobs run in this process (only in `mmrag serve`)."""
        return self._jobs is not None

    def service(self) -> JobService:
        if self._jobs is None:
            raise Unavailable("bulk jobs run only in `mmrag serve`, not in this process")
        return self._jobs

    def status(self, place: Place, job_id: str) -> str:
        """A job's status line, for this workspace's jobs only."""
        status = self.service().status(job_id, place.tenant)
        return render.job_status(job_id, status.state, status.settled, status.total, status.counts)

    def annotate(
        self,
        client: WebClient,
        place: Place,
        command: commands.Annotate,
        shared: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Index the files that came with the request (else the channel's last N images) for
        the workspace, start a bulk job on them and watch it in a thread."""
        poster = Poster(client, place)
        try:
            jobs = self.service()
            files = list(shared) or recent_images(client, place.channel, command.last)
            image_ids = list(dict.fromkeys(self._intake.index(client, place, files)))
            if not image_ids:
                poster.ephemeral(render.failure("I found no images to annotate here"))
                return
            tasks: list[JobTask] = []
            if command.caption:
                tasks.append(CaptionTask(task="caption"))
            if command.detect:
                tasks.append(DetectTask(task="detect", labels=list(command.detect)))
            spec = JobSpec(source=IndexedSource(kind="indexed", ids=image_ids), tasks=tasks)
            job = jobs.submit(spec, tenant=place.tenant)
        except MmragError as error:
            poster.ephemeral(render.failure(error.detail))
            return
        ts = poster.post(render.job_started(job.id, len(image_ids), spec.task_names()))
        thread = Poster(client, place.in_thread(place.thread_ts or ts))
        self._in_background(lambda: self.watch(thread, job.id))

    def watch(self, poster: Poster, job_id: str) -> None:
        """Post the job's progress every ``job_progress_s`` while it moves, then its end."""
        jobs = self.service()
        tenant = poster.place.tenant
        shown = -1
        while not self._closing.wait(self._settings.job_progress_s):
            status = jobs.status(job_id, tenant)
            if status.state not in UNFINISHED:
                export = f"/v1/jobs/{job_id}/export?format=coco"
                if self._settings.public_url:
                    export = self._settings.public_url.rstrip("/") + export
                poster.post(render.job_finished(job_id, status.state, status.counts, export))
                return
            if status.settled != shown:
                shown = status.settled
                poster.post(render.job_progress(job_id, shown, status.total, status.counts))
