"""Changing the embedder without downtime: the collection re-embedded into a new version
while the old one serves, then one switch (README: Changing the embedder).

The copying is :mod:`mmrag.retrieval.reindex`, the versions and their alias
:mod:`mmrag.retrieval.aliases`, serving through a switch
:mod:`mmrag.retrieval.switchable`; this module runs them for a :class:`~mmrag.services.Services`:
on demand (:meth:`EmbedderSwap.run`, ``mmrag reindex``) or, for a server whose configured
embedder is not the one that filled the collection, in the background from the start
(:meth:`EmbedderSwap.start_in_background`).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mmrag.errors import InvalidInput, MmragError
from mmrag.retrieval.aliases import forget_retired, read_aliases, switch_alias, version_name
from mmrag.retrieval.indexing import IndexScheduler, build_now
from mmrag.retrieval.provenance import recorded_embedder
from mmrag.retrieval.reindex import ReindexCounts, Reindexer, ReindexProgress
from mmrag.retrieval.store import VectorStore
from mmrag.retrieval.stores import drop_collection

if TYPE_CHECKING:
    from mmrag.services import Services

log = logging.getLogger(__name__)


class EmbedderSwap:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._running = threading.Lock()
        self._background: threading.Thread | None = None
        self._cancel = threading.Event()

    def run(
        self,
        spec: str,
        cancel: threading.Event | None = None,
        progress: ReindexProgress | None = None,
        grace_s: float = 60.0,
    ) -> ReindexCounts:
        """Re-embed the collection with ``spec`` into a new version while the old one serves,
        then switch; the old version is dropped ``grace_s`` after. One at a time."""
        if not self._running.acquire(blocking=False):
            raise InvalidInput("a re-index is already running in this process")
        try:
            return self._run(spec, cancel, progress, grace_s)
        finally:
            self._running.release()

    def _run(
        self,
        spec: str,
        cancel: threading.Event | None,
        progress: ReindexProgress | None,
        grace_s: float,
    ) -> ReindexCounts:
        services = self._services
        services.embedder()  # the collection exists and matches the embedder serving it
        if spec == services.serving_embedder_spec:
            raise InvalidInput(f"the collection is already embedded by {spec}")
        embedder = services.load_embedder(spec)
        settings = services.settings
        alias = settings.store.collection
        name = version_name(alias, spec)
        target = services.open_collection(name)
        switched = False
        try:
            target.ensure_collection(embedder.dim)
            reindexer = Reindexer(
                services.store,
                target,
                embedder,
                spec,
                services.blobs,
                settings.limits,
                settings.models.batch_size,
                settings.regions.margin,
            )
            # Built while it fills (the upserts wait for a build past hnsw.max_unindexed, so
            # the RAM its unindexed points take stays bounded), and built to the end before the
            # switch: the new collection serves its first search from a graph, not a scan.
            builds = IndexScheduler(target, settings.store.hnsw)
            builds.start()
            try:
                counts = reindexer.run(cancel, progress)
            except BaseException:
                builds.stop()  # cancelled or failed: its build is not waited for
                raise
            builds.stop(timeout=None, cancel_build=False)
            build_now(target, settings.store.hnsw)
            retired: list[str] = []

            def last_step() -> None:
                late = reindexer.catch_up()
                counts.copied += late.copied
                counts.failed += late.failed
                counts.removed = late.removed
                drop_after = datetime.now(UTC) + timedelta(seconds=grace_s)
                retired.append(
                    switch_alias(settings.data_dir, alias, name, spec, embedder.dim, drop_after)
                )

            old = services.switch_collection(target, spec, last_step)
            switched = True
        finally:
            if not switched:
                target.close()
        log.info(
            "re-indexed with %s into %s; %s is dropped in %.0f s", spec, name, retired[0], grace_s
        )
        timer = threading.Timer(grace_s, self._drop, (old, retired[0]))
        timer.daemon = True
        timer.start()
        return counts

    def _drop(self, old: VectorStore, name: str) -> None:
        services = self._services
        services.retire_collection(old)
        drop_collection(services.settings, name)
        forget_retired(services.settings.data_dir, services.settings.store.collection, name)

    def drop_expired_versions(self) -> None:
        """Drop the versions a switch retired whose grace period has passed (the process
        that switched may have ended before its timer ran)."""
        settings = self._services.settings
        alias = read_aliases(settings.data_dir).get(settings.store.collection)
        now = datetime.now(UTC)
        for retired in alias.retired if alias else ():
            if datetime.fromisoformat(retired.drop_after) <= now:
                drop_collection(settings, retired.collection)
                forget_retired(settings.data_dir, settings.store.collection, retired.collection)

    def start_in_background(self) -> bool:
        """When the collection was filled by another embedder than the configured one: serve
        it with that one and swap to the configured one in the background (progress in the
        log). True when a swap started; False when none is needed, or when the old embedder
        cannot load (the collection is then refused as usual)."""
        services = self._services
        try:
            recorded = recorded_embedder(services.store)
        except MmragError:
            return False  # no collection yet, or the store is down: nothing to swap
        configured = services.serving_embedder_spec
        if recorded is None or recorded[0] == configured or self._background is not None:
            return False
        services.serve_embedder(recorded[0])
        try:
            services.embedder()
        except MmragError as error:
            log.error("cannot serve the collection with %s meanwhile: %s", recorded[0], error)
            services.serve_embedder(configured)
            return False
        log.warning(
            "the collection was embedded by %s: serving it with that while re-embedding it with %s",
            recorded[0],
            configured,
        )
        self._background = threading.Thread(
            target=self._swap_to, args=(configured,), name="embedder-swap", daemon=True
        )
        self._background.start()
        return True

    def _swap_to(self, spec: str) -> None:
        next_report = [0.0]

        def progress(done: int, total: int) -> None:
            if total and done / total >= next_report[0]:
                log.info("re-embedding with %s: %d of %d images", spec, done, total)
                next_report[0] = done / total + 0.1

        try:
            counts = self.run(spec, self._cancel, progress)
        except MmragError as error:
            log.error("re-embedding with %s stopped: %s", spec, error.detail)
            return
        log.info("now serving %s (%d images re-embedded)", spec, counts.copied + counts.skipped)

    def wait(self, timeout_s: float) -> None:
        """Wait for a background swap to end (tests, shutdown)."""
        if self._background is not None:
            self._background.join(timeout_s)

    def close(self) -> None:
        """Stop a background swap at its next batch (the next start resumes it)."""
        self._cancel.set()
        self.wait(60)
