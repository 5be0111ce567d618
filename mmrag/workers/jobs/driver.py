"""What drives jobs: one driver thread in the API process, in both modes.

Why there, and not a Celery task per batch: the part of a batch that is not model work
(reading the source, embedding and upserting new images, writing captions and boxes back
into the index) needs the embedder and the vector store, and in the embedded mode the
store is a directory only one process may open. The API process already holds both, and
the Celery workers serve only the vision tools. So the driver claims batches from the
:class:`JobStore`, runs each on a small pool of threads, and sends the model work of each
batch through the :class:`ToolClient` as one tool task per task kind: in-process threads
in the embedded mode, the Celery workers in the distributed mode (where a worker that dies
mid-task is covered by acks-late redelivery, or by the runner's timeout and our retry).

What makes it resumable: item state is persisted per batch, and each claim holds its
items under a lease that the driver renews while the batch runs. Items of a driver that
died (or lost the store for longer than a lease) go back to pending when their lease runs
out, at the next claim of any driver; the old claim's late save then changes nothing. In
the distributed mode the state lives in Redis, so another API process takes over the same
jobs; claims are atomic there, so two drivers never run the same item at once.

Cancel moves a job to ``cancelling``: no batch of it is claimed any more, the running ones
finish and are saved, then the job is ``cancelled``.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from mmrag.errors import MmragError
from mmrag.workers.jobs.ports import JobServices
from mmrag.workers.jobs.processing import BatchProcessor
from mmrag.workers.jobs.records import ItemRecord, JobRecord, JobState
from mmrag.workers.jobs.store import JobStore

log = logging.getLogger(__name__)

_SAVE_RETRY_S = 1.0
_SAVE_ATTEMPTS = 60  # a store away for a minute: the lease runs out, the items run again


class JobDriver:
    def __init__(
        self, services: JobServices, store: JobStore, on_end: Callable[[str], None] | None = None
    ) -> None:
        self.services = services
        self.store = store
        self.on_end = on_end
        self.settings = services.settings.jobs
        self.processor = BatchProcessor(services, store)
        self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="job-batch")
        self._in_flight: Counter[str] = Counter()
        self._token = secrets.token_hex(8)  # this driver's part of each claim's owner token
        self._claims = itertools.count()
        self._held: dict[str, tuple[str, list[int]]] = {}  # owner -> (job id, seqs)
        self._renewed = 0.0  # monotonic time of the last lease renewal
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._only: str | None = None

    def start(self, only: str | None = None) -> None:
        """Drive unfinished jobs (or only the job ``only``: the CLI's own); items a dead
        driver left running come back as their leases run out."""
        self._only = only
        self._thread = threading.Thread(target=self._loop, name="job-driver", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; wait for running batches to finish and be saved."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._renew_leases()
                self._step()
            except MmragError as error:  # the job store away (Redis restarting): wait
                log.warning("job driver: %s", error)
            except Exception:  # a bug must not stop every job for good
                log.exception("job driver step failed")
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()

    def _step(self) -> None:
        for job_id in self.store.unfinished():
            if self._stop.is_set():
                return
            if self._only is not None and job_id != self._only:
                continue
            try:
                self._drive(job_id)
            except MmragError:
                raise  # the store away: every job waits alike
            except Exception:  # this job's bug or bad record: the jobs after it go on
                log.exception("job %s: driving it failed; the other jobs go on", job_id)

    def _drive(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job.state == "cancelling":
            if not self._running(job_id):
                self._end(job_id, "cancelled", frozenset({"cancelling"}))
            return
        if job.state == "queued":
            self.store.set_state(job_id, "running", frozenset({"queued"}), time.time())
        self._fill(job)
        if not self._running(job_id):
            counts = self.store.counts(job_id)
            finished = counts["pending"] == 0 and counts["running"] == 0
            if finished and self._end(job_id, "completed", frozenset({"running"})):
                log.info("job %s completed: %s", job_id, dict(counts))

    def _renew_leases(self) -> None:
        """Extend the leases of the batches in flight, every third of a lease."""
        if time.monotonic() - self._renewed < self.settings.lease_s / 3:
            return
        with self._lock:
            held = list(self._held.items())
        until = time.time() + self.settings.lease_s
        for owner, (job_id, seqs) in held:
            self.store.renew(job_id, owner, seqs, until)
        self._renewed = time.monotonic()

    def _end(self, job_id: str, state: JobState, expected: frozenset[JobState]) -> bool:
        """Move the job to its final state; only the driver that moved it tells anyone."""
        moved = self.store.set_state(job_id, state, expected, time.time())
        if moved and self.on_end is not None:
            try:
                self.on_end(job_id)
            except MmragError as error:
                log.warning("job %s ended, but telling of it failed: %s", job_id, error)
        return moved

    def _fill(self, job: JobRecord) -> None:
        """Claim batches of ``job`` while there are free slots (higher priority came first)."""
        while not self._stop.is_set() and self._free_slots() > 0:
            owner = f"{self._token}:{next(self._claims)}"
            now = time.time()
            items = self.store.claim(
                job.id, job.spec.options.batch_size, now, owner, now + self.settings.lease_s
            )
            if not items:
                return
            with self._lock:
                self._in_flight[job.id] += 1
                self._held[owner] = (job.id, [item.seq for item in items])
            self._pool.submit(self._run_batch, job, owner, items)

    def _free_slots(self) -> int:
        with self._lock:
            return self.settings.concurrency - sum(self._in_flight.values())

    def _running(self, job_id: str) -> bool:
        with self._lock:
            return self._in_flight[job_id] > 0

    def _run_batch(self, job: JobRecord, owner: str, items: Sequence[ItemRecord]) -> None:
        try:
            try:
                outcome = self.processor.run(job, items)
                settled, timings = outcome.items, outcome.timings
            except Exception as error:  # unexpected: the items retry, the job goes on
                log.exception("a batch of job %s failed", job.id)
                reason = (
                    error
                    if isinstance(error, MmragError)
                    else MmragError(f"internal error: {type(error).__name__}")
                )
                settled, timings = self.processor.retry_all(job, items, reason), {}
            self._save(job.id, owner, settled, timings)
        finally:
            with self._lock:
                self._in_flight[job.id] -= 1
                if not self._in_flight[job.id]:
                    del self._in_flight[job.id]  # jobs that ran once do not pile up
                del self._held[owner]
            self._wake.set()

    def _save(
        self, job_id: str, owner: str, items: list[ItemRecord], timings: dict[str, float]
    ) -> None:
        for attempt in range(_SAVE_ATTEMPTS):
            try:
                self.store.save_items(job_id, items, owner)
                break
            except MmragError as error:
                if attempt == 0:
                    log.warning("cannot save a batch of job %s (%s); retrying", job_id, error)
                time.sleep(_SAVE_RETRY_S)
        else:
            log.error("gave up saving a batch of job %s; it runs again when its lease ends", job_id)
            return
        try:
            self.store.add_timings(job_id, timings)
        except MmragError as error:  # only the per-stage figures miss this batch
            log.warning("cannot record timings of job %s: %s", job_id, error)
