"""One batch of a job's items, start to finish: ingest, each task, the items' new state.

Model work goes through :class:`~mmrag.workers.client.ToolClient` (in-process threads or
Celery workers, per settings), one tool task per task kind for the whole batch, and its
write-back puts captions, labels, boxes and counts into the index. Every step is
idempotent (ids are content hashes; write-back replaces what it wrote before), so a batch
run twice after a crash leaves the index as one run does.

An item fails alone: its error is kept as its reason. Errors a retry may cure (a URL
that timed out, a task that gave no result) send it back to pending with a backoff until
its attempts run out; anything else fails it at once. An outage of the tool backend (no
worker, the broker down, or a task lost while its worker went away) is nobody's item's
fault: the items go back to pending with a longer backoff and spend no attempt. A batch
whose whole tool call failed while the workers are up is run again one image per call, so
only a poison image fails, not its batch-mates.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmrag.errors import (
    BackendDown,
    MmragError,
    NotFound,
    QuotaExceeded,
    SourceUnreachable,
    Unavailable,
)
from mmrag.retrieval.annotations import count_key, normalise_label
from mmrag.retrieval.tenants import DEFAULT_TENANT
from mmrag.workers.client import ImageRequest
from mmrag.workers.jobs.ports import JobServices
from mmrag.workers.jobs.records import ItemRecord, JobRecord
from mmrag.workers.jobs.sources import ingest_item
from mmrag.workers.jobs.spec import (
    AskTask,
    CaptionTask,
    DetectTask,
    GroundTask,
    JobTask,
    RegionsTask,
)
from mmrag.workers.jobs.store import JobStore
from mmrag.workers.protocol import ItemResult, ToolName, rebuild_error

log = logging.getLogger(__name__)

TRANSIENT = (Unavailable, SourceUnreachable)


@dataclass
class _Work:
    item: ItemRecord
    image_id: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: MmragError | None = None
    annotated: bool = False  # the index already holds what the tasks would write
    twin_of: int | None = None  # the seq of the job's item with the same image
    outage: bool = False  # the error is the tool backend's being down, not this item's
    resumed: bool = False  # this item ran before in this job (its driver died before saving)

    @property
    def skipped(self) -> bool:
        """Nothing to run for it: another item's image, or already in the index."""
        return self.annotated or self.twin_of is not None

    @property
    def done_elsewhere(self) -> bool:
        """Settled as skipped: its results are someone else's work, not this job's run of
        this item (results found in the index after a crash of its own run are done)."""
        return self.twin_of is not None or (self.annotated and not self.resumed)


@dataclass(frozen=True)
class BatchOutcome:
    items: list[ItemRecord]
    timings: dict[str, float]


class BatchProcessor:
    def __init__(
        self, services: JobServices, store: JobStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.services = services
        self.store = store
        self.settings = services.settings
        self.clock = clock

    def run(self, job: JobRecord, items: Sequence[ItemRecord]) -> BatchOutcome:
        # A job reads and writes its tenant's view of the store only (retrieval/tenants.py).
        scoped = self.services.scoped(job.tenant or DEFAULT_TENANT)
        if scoped is not self.services:
            return BatchProcessor(scoped, self.store, self.clock).run(job, items)
        timings: dict[str, float] = defaultdict(float)
        works = [_Work(item) for item in items]
        started = time.perf_counter()
        self._images(job, works)
        self._skip_twins(job, works)
        self._skip_annotated(job, works)
        timings["ingest"] += time.perf_counter() - started
        for task in job.spec.tasks:
            started = time.perf_counter()
            self._task(job, task, [w for w in works if w.error is None and not w.skipped])
            timings[task.task] += time.perf_counter() - started
        self._describe([w for w in works if w.error is None and w.twin_of is None])
        return BatchOutcome([self._settle(job, work) for work in works], dict(timings))

    def retry_all(
        self, job: JobRecord, items: Sequence[ItemRecord], error: MmragError
    ) -> list[ItemRecord]:
        """Every item back to pending (or failed, out of attempts) with ``error``."""
        outage = isinstance(error, BackendDown)
        return [self._settle(job, _Work(item, error=error, outage=outage)) for item in items]

    # -- stages ----------------------------------------------------------------------------

    def _images(self, job: JobRecord, works: list[_Work]) -> None:
        """Each item's image in the index: ingested now, or (indexed sources) looked up."""
        source = job.spec.source
        if source.kind == "indexed":
            present = self.services.store.existing([work.item.key for work in works])
            for work in works:
                if work.item.key in present:
                    work.image_id = work.item.key
                else:
                    work.error = NotFound(f"image {work.item.key} is no longer in the index")
            return
        with self.services.url_fetcher() as fetcher:
            ingest = [ingest_item(source, w.item.key, self.settings, fetcher) for w in works]
            try:
                report = self.services.ingest(ingest)
            except QuotaExceeded as error:  # the tenant's quota: the batch stores nothing
                for work in works:
                    work.error = error
                return
        for work, result in zip(works, report.results, strict=True):
            if result.image is not None:
                work.image_id = result.image.image_id
            else:
                work.error = result.error or MmragError("ingest failed")

    def _skip_twins(self, job: JobRecord, works: list[_Work]) -> None:
        """An image the job already has from another item (the same bytes under two names)
        is annotated and exported once: the later items are skipped, saying which."""
        alive = [work for work in works if work.error is None]
        pairs = [(str(work.image_id), work.item.seq) for work in alive]
        for work, (owner, new) in zip(alive, self.store.claim_images(job.id, pairs), strict=True):
            if owner != work.item.seq:
                work.twin_of = owner
            elif not new:
                work.resumed = True

    def _skip_annotated(self, job: JobRecord, works: list[_Work]) -> None:
        """Images that already carry what this job would write (a job run again, or another
        job with the same tasks and models) are skipped, their results read from the index.
        Answers are not kept in the index, so a job with questions never skips."""
        if any(isinstance(task, AskTask) for task in job.spec.tasks):
            return
        if not any(
            isinstance(task, CaptionTask | DetectTask | GroundTask | RegionsTask)
            for task in job.spec.tasks
        ):
            return
        alive = [work for work in works if work.error is None and work.twin_of is None]
        payloads = self.services.store.get([str(work.image_id) for work in alive])
        for work in alive:
            payload = payloads.get(str(work.image_id))
            found = None if payload is None else self._stored_results(job, payload)
            if found is not None:
                work.result = found
                work.annotated = True

    def _stored_results(self, job: JobRecord, payload: dict[str, Any]) -> dict[str, Any] | None:
        models = job.spec.options.models
        found: dict[str, Any] = {}
        for task in job.spec.tasks:
            match task:
                case CaptionTask(detail=detail):
                    spec = self.services.tools.model_for("caption", models.vlm)
                    if (
                        payload.get("caption_model") != spec
                        or payload.get("caption_detail") != detail
                        or "model_caption" not in payload
                    ):
                        return None
                    found["caption"] = payload["model_caption"]
                case DetectTask(labels=labels) | GroundTask(phrases=labels):
                    spec = self.services.tools.model_for(task.task, models.grounding)
                    asked = {normalise_label(label) for label in labels}
                    counts = payload.get("counts", {})
                    if any(count_key(label) not in counts for label in asked):
                        return None
                    boxes = [
                        {key: box[key] for key in ("label", "score", "box")}
                        for box in payload.get("boxes", [])
                        if box.get("label") in asked and box.get("model") == spec
                    ]
                    if sum(counts[count_key(label)] for label in asked) != len(boxes):
                        return None  # counted by another model, or boxes cut at the cap
                    found["detections" if task.task == "detect" else "grounding"] = boxes
                case RegionsTask():
                    regions = payload.get("regions")
                    if regions is None:
                        return None
                    found["regions"] = {"regions": len(regions)}
        return found

    def _task(self, job: JobRecord, task: JobTask, works: list[_Work]) -> None:
        if not works:
            return
        models = job.spec.options.models
        # An image deleted while the job ran would fail the whole tool call: leave it out.
        present = self.services.store.existing([str(work.image_id) for work in works])
        for work in works:
            if work.image_id not in present:
                work.error = NotFound(f"image {work.image_id} was deleted while the job ran")
        works = [work for work in works if work.error is None]
        if not works:
            return
        match task:
            case CaptionTask(detail=detail):
                requests = [ImageRequest(str(w.image_id), detail=detail) for w in works]
                self._tool("caption", requests, works, models.vlm, "caption", "caption")
            case DetectTask(labels=labels):
                requests = [ImageRequest(str(w.image_id), phrases=tuple(labels)) for w in works]
                self._tool("detect", requests, works, models.grounding, "detections", "boxes")
            case GroundTask(phrases=phrases):
                requests = [ImageRequest(str(w.image_id), phrases=tuple(phrases)) for w in works]
                self._tool("ground", requests, works, models.grounding, "grounding", "boxes")
            case RegionsTask():
                self._regions(works)
            case AskTask(questions=questions):
                for question in questions:
                    alive = [work for work in works if work.error is None]
                    requests = [ImageRequest(str(w.image_id), question=question) for w in alive]
                    for work, answer in self._call("vqa", requests, alive, models.vlm):
                        entry = {"question": question, **answer}
                        work.result.setdefault("answers", []).append(entry)
            case _:  # embed: ingest did it
                pass

    def _regions(self, works: list[_Work]) -> None:
        """Region vectors of each image from its stored boxes; an image fails alone."""
        for work in works:
            try:
                report = self.services.regions.index(str(work.image_id))
            except MmragError as error:
                work.error = error
                continue
            work.result["regions"] = report.as_result()

    def _tool(
        self,
        tool: ToolName,
        requests: list[ImageRequest],
        works: list[_Work],
        model: str | None,
        key: str,
        field_name: str,
    ) -> None:
        for work, output in self._call(tool, requests, works, model):
            work.result[key] = output[field_name]

    def _call(
        self, tool: ToolName, requests: list[ImageRequest], works: list[_Work], model: str | None
    ) -> list[tuple[_Work, ItemResult]]:
        """The tool over the batch: each work's output, errors recorded on the works."""
        if not requests:
            return []
        try:
            results = self.services.tools.run(tool, requests, model, index_errors="report")
        except MmragError as error:  # the whole call: no worker, broker down, timeout
            return self._call_failed(tool, requests, works, model, error)
        answered = []
        for work, result in zip(works, results, strict=True):
            envelope = result.get("error")
            if envelope is None:
                answered.append((work, result))
            else:
                work.error = rebuild_error(str(envelope.get("type")), str(envelope.get("detail")))
        return answered

    def _call_failed(
        self,
        tool: ToolName,
        requests: list[ImageRequest],
        works: list[_Work],
        model: str | None,
        error: MmragError,
    ) -> list[tuple[_Work, ItemResult]]:
        """A tool call that failed as a whole: an outage, or maybe one poison image."""
        outage = isinstance(error, BackendDown) or (
            # A task lost with its worker (no result in time) while no worker beats any more.
            isinstance(error, Unavailable) and self.services.tools.runner.readiness(tool) != "ok"
        )
        if outage or len(works) == 1:
            for work in works:
                work.error = error
                work.outage = outage
            return []
        log.info("a %s call over %d images failed (%s): one by one", tool, len(works), error)
        answered = []
        for request, work in zip(requests, works, strict=True):
            answered.extend(self._call(tool, [request], [work], model))
        return answered

    def _describe(self, works: list[_Work]) -> None:
        """Image facts the exports need (size, content hash)."""
        payloads = self.services.store.get([str(work.image_id) for work in works])
        for work in works:
            payload = payloads.get(str(work.image_id))
            if payload is None:
                work.error = NotFound(f"image {work.image_id} was deleted while the job ran")
                continue
            work.result.update(
                width=payload["width"], height=payload["height"], sha256=payload["sha256"]
            )

    # -- settling --------------------------------------------------------------------------

    def _settle(self, job: JobRecord, work: _Work) -> ItemRecord:
        attempts = work.item.attempts + 1
        error = work.error
        jobs = self.settings.jobs
        if error is not None and work.outage:
            outages = work.item.outages
            wait = min(jobs.outage_backoff_s * 2**outages, jobs.outage_backoff_max_s)
            log.info("item %s of job %s: %s; again in %.1f s", work.item.key, job.id, error, wait)
            return work.item.model_copy(
                update={
                    "state": "pending",
                    "outages": outages + 1,
                    "reason": error.detail,
                    "not_before": self.clock() + wait,
                }
            )
        if error is None:
            twin = work.twin_of
            return work.item.model_copy(
                update={
                    "state": "skipped" if work.done_elsewhere else "done",
                    "attempts": attempts,
                    "reason": "" if twin is None else f"the same image as item {twin}",
                    "image_id": work.image_id,
                    # A twin's results are its first item's: exported once, there.
                    "result": None if twin is not None else work.result,
                }
            )
        retry = isinstance(error, TRANSIENT) and attempts < job.spec.options.max_attempts
        if not retry:
            return work.item.model_copy(
                update={"state": "failed", "attempts": attempts, "reason": error.detail}
            )
        wait = min(jobs.retry_backoff_s * 2 ** (attempts - 1), jobs.retry_backoff_max_s)
        log.info("item %s of job %s: %s; retry in %.1f s", work.item.key, job.id, error, wait)
        return work.item.model_copy(
            update={
                "state": "pending",
                "attempts": attempts,
                "reason": error.detail,
                "not_before": self.clock() + wait,
            }
        )
