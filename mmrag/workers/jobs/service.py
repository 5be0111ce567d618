"""Jobs as the API and the CLI see them: submit, progress, cancel, list, export."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from mmrag.errors import InvalidInput, NotFound, RateLimited
from mmrag.retrieval.tenants import DEFAULT_TENANT
from mmrag.workers.jobs.archive import forget_archive
from mmrag.workers.jobs.driver import JobDriver
from mmrag.workers.jobs.ports import JobServices
from mmrag.workers.jobs.records import UNFINISHED, ItemRecord, ItemState, JobRecord, JobState
from mmrag.workers.jobs.sources import check_webhook, list_keys
from mmrag.workers.jobs.spec import ArchiveSource, JobSpec
from mmrag.workers.jobs.store import JobStore, open_job_store
from mmrag.workers.jobs.webhook import WebhookSender, redact, webhook_secret

log = logging.getLogger(__name__)

EXPORT_PAGE = 500


class JobStatus(BaseModel):
    id: str
    state: JobState
    spec: JobSpec
    created: float
    started: float | None
    finished: float | None
    total: int
    counts: dict[ItemState, int]
    rate_per_s: float | None  # items settled per second since the job started
    eta_s: float | None
    timings_s: dict[str, float]  # time spent per stage, summed over batches

    @property
    def settled(self) -> int:
        return self.counts["done"] + self.counts["failed"] + self.counts["skipped"]


TENANT_SCAN_PAGE = 500


class JobService:
    def __init__(self, services: JobServices, store: JobStore) -> None:
        self.services = services
        self.store = store
        self.driver = JobDriver(services, store, self._job_ended)
        # The limit check and the job's creation together: two submits cannot both pass it.
        self._admitting = threading.Lock()
        secret = webhook_secret(services.settings)
        # Looked up at each send, as for ingest: whoever swaps the fetcher (tests) swaps both.
        self.webhooks = WebhookSender(
            secret, lambda: services.url_fetcher(), services.settings.jobs.retry_backoff_s
        )

    def _job_ended(self, job_id: str) -> None:
        """Called once per job, by the driver that ended it."""
        status = self.status(job_id)
        url = self.store.get(job_id).spec.options.webhook  # the status shows it redacted
        if url:
            self.webhooks.send_later(url, status.model_dump_json().encode())
        if isinstance(status.spec.source, ArchiveSource):
            # Its items are settled and exported from the store: the upload is not needed.
            try:
                forget_archive(Path(status.spec.source.path))
            except OSError as error:
                log.warning("job %s: cannot delete its archive: %s", job_id, error)

    @classmethod
    def open(cls, services: JobServices) -> JobService:
        return cls(services, open_job_store(services.settings))

    def start(self, only: str | None = None) -> None:
        """Drive the unfinished jobs, or only the job ``only``."""
        self.driver.start(only)

    def close(self) -> None:
        self.driver.stop()
        self.store.close()

    def submit_for_agent(self, spec: JobSpec, tenant: str | None) -> str:
        """The agent's job starter (Services.job_starter): submits and gives the job id."""
        return self.submit(spec, tenant=tenant).id

    def admit(self, tenant: str | None) -> None:
        """Refuse a new job while ``tenant`` has its limit of unfinished ones
        (``tenancy.concurrent_jobs``); every surface's submit passes here."""
        if tenant is None:
            return
        limit = self.services.settings.tenancy.concurrent_jobs
        running = sum(1 for job in self.records(tenant) if job.state in UNFINISHED)
        if running >= limit:
            raise RateLimited(
                f"tenant {tenant!r} has {running} unfinished jobs, its limit", retry_after_s=30
            )

    def submit(
        self, spec: JobSpec, archive: Path | None = None, tenant: str | None = None
    ) -> JobRecord:
        """Check the source, list its items and queue the job; the job id at once. A
        ``tenant``'s job is seen only by that tenant, and counts against its limit."""
        with self._admitting:
            self.admit(tenant)
            return self._submit(spec, archive, tenant)

    def _submit(self, spec: JobSpec, archive: Path | None, tenant: str | None) -> JobRecord:
        job = JobRecord(spec=spec, total=0, tenant=tenant)
        check_webhook(spec.options.webhook)
        self._check_models(spec)
        if isinstance(spec.source, ArchiveSource):
            if archive is None:
                raise InvalidInput("an archive source needs the archive uploaded with the job")
            kept = self.services.settings.jobs_dir / "archives" / f"{job.id}{archive.suffix}"
            kept.parent.mkdir(parents=True, exist_ok=True)
            archive.replace(kept)
            spec = spec.model_copy(update={"source": ArchiveSource(kind="archive", path=str(kept))})
        try:
            # The tenant's own images only: an indexed source is its view of the store.
            view = self.services.scoped(tenant or DEFAULT_TENANT).store
            keys = list_keys(spec.source, self.services.settings, view)
        except BaseException:
            if isinstance(spec.source, ArchiveSource):
                Path(spec.source.path).unlink(missing_ok=True)
            raise
        job = job.model_copy(update={"spec": spec, "total": len(keys)})
        self.store.create(job, keys)
        self.driver.wake()
        return job

    def _check_models(self, spec: JobSpec) -> None:
        """A model the job names must be one this service serves (UnknownModel otherwise)."""
        models = spec.options.models
        for name in spec.task_names():
            if name in ("caption", "vqa"):
                self.services.tools.model_for(name, models.vlm)
            elif name in ("detect", "ground"):
                self.services.tools.model_for(name, models.grounding)

    def status(self, job_id: str, tenant: str | None = None) -> JobStatus:
        """The job's status; with a ``tenant``, only for a job that tenant started (another
        one's is as unknown as a job that never was)."""
        job = self.store.get(job_id)
        if tenant is not None and (job.tenant or DEFAULT_TENANT) != tenant:
            raise NotFound(f"no job with id {job_id}")
        counts = self.store.counts(job_id)
        settled = counts["done"] + counts["failed"] + counts["skipped"]
        rate = eta = None
        if job.started is not None and settled:
            elapsed = (job.finished or time.time()) - job.started
            rate = settled / max(elapsed, 1e-6)
            eta = 0.0 if job.state not in UNFINISHED else (job.total - settled) / rate
        spec = job.spec
        if spec.options.webhook:  # its path may carry the receiver's token
            options = spec.options.model_copy(update={"webhook": redact(spec.options.webhook)})
            spec = spec.model_copy(update={"options": options})
        return JobStatus(
            id=job.id,
            state=job.state,
            spec=spec,
            created=job.created,
            started=job.started,
            finished=job.finished,
            total=job.total,
            counts=counts,
            rate_per_s=rate,
            eta_s=eta,
            timings_s=self.store.timings(job_id),
        )

    def cancel(self, job_id: str, tenant: str | None = None) -> JobStatus:
        self.status(job_id, tenant)  # another tenant's job: NotFound, nothing cancelled
        job = self.store.get(job_id)
        if job.state in UNFINISHED:
            self.store.set_state(job_id, "cancelling", UNFINISHED, time.time())
            self.driver.wake()
        return self.status(job_id)

    def page(
        self, limit: int, offset: int, tenant: str | None = None
    ) -> tuple[list[JobStatus], int]:
        if tenant is None:
            jobs, total = self.store.page(limit, offset)
            return [self.status(job.id) for job in jobs], total
        mine = self.records(tenant)
        return [self.status(job.id) for job in mine[offset : offset + limit]], len(mine)

    def records(self, tenant: str) -> list[JobRecord]:
        """The tenant's jobs, newest first. The job stores page over all jobs; a tenant's are
        filtered here, reading the records (not the items) page by page: job counts are
        small next to item counts."""
        mine: list[JobRecord] = []
        position = 0
        while True:
            jobs, _ = self.store.page(TENANT_SCAN_PAGE, position)
            mine.extend(job for job in jobs if (job.tenant or DEFAULT_TENANT) == tenant)
            position += len(jobs)
            if len(jobs) < TENANT_SCAN_PAGE:
                return mine

    def items(self, job_id: str, offset: int = 0, limit: int | None = None) -> Iterator[ItemRecord]:
        """The job's items in order, read page by page (memory does not grow with the job)."""
        job = self.store.get(job_id)
        end = job.total if limit is None else min(job.total, offset + limit)
        position = offset
        while position < end:
            page = self.store.items(job_id, position, min(EXPORT_PAGE, end - position))
            if not page:
                return
            yield from page
            position += len(page)
