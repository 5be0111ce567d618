"""The service's parts, built once from settings and shared by the API, the CLI and tests."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from mmrag.config import Settings
from mmrag.embedder_swap import EmbedderSwap
from mmrag.errors import MmragError, NotFound
from mmrag.models.cache import ModelCache
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions, Serving
from mmrag.models.fixtures.background import FixtureBuilds, fixture_name
from mmrag.models.registry import create_embedder
from mmrag.retrieval.addresses import Resolver, system_resolver
from mmrag.retrieval.annotations import AnnotationWriter
from mmrag.retrieval.blobs import BlobStore, FilesystemBlobStore
from mmrag.retrieval.decode import decode_image
from mmrag.retrieval.indexing import IndexScheduler
from mmrag.retrieval.ingest import IngestPipeline
from mmrag.retrieval.items import IngestItem, IngestReport, ProgressCallback
from mmrag.retrieval.provenance import check_collection
from mmrag.retrieval.regions import RegionIndexer
from mmrag.retrieval.reindex import ReindexCounts, ReindexProgress
from mmrag.retrieval.search import SearchQuery, SearchResults, SearchService
from mmrag.retrieval.sources import UrlFetcher
from mmrag.retrieval.store import VectorStore
from mmrag.retrieval.stores import open_store
from mmrag.retrieval.switchable import SwitchableStore
from mmrag.retrieval.tenants import TenantView, checked_tenant, holders
from mmrag.tenancy.quota import StorageQuota, known_bytes
from mmrag.workers.client import ToolClient
from mmrag.workers.protocol import TOOL_NAMES, TOOL_QUEUES
from mmrag.workers.runner import TaskRunner, open_runner

if TYPE_CHECKING:
    from mmrag.agents.agent import Agent
    from mmrag.agents.jobs import JobStarter

log = logging.getLogger(__name__)

# A model that failed to load is not tried again for this long: every search and readiness
# probe would otherwise repeat the attempt (a network probe, a file scan) and tie up threads.
MODEL_RETRY_AFTER_S = 30.0


class Services:
    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        blobs: BlobStore,
        models: ModelCache | None = None,
        runner: TaskRunner | None = None,
    ) -> None:
        self.settings = settings
        # Every part holds this one store, so that a re-index can switch what it serves.
        self._switchable = SwitchableStore(store)
        self.store: VectorStore = self._switchable
        store = self.store
        self._embedder_spec = settings.embedder_spec
        self._active = threading.Lock()  # the embedder spec and the store switch together
        self.swap = EmbedderSwap(self)
        self.blobs = blobs
        self.models = models or ModelCache()
        # Fixture models a fresh machine lacks, trained in the background (offline profile).
        self.fixture_builds = FixtureBuilds(settings.models.cache_dir)
        self.search = SearchService(
            self.embedder,
            store,
            settings.limits,
            settings.regions.fusion_weight,
            settings.regions.min_match,
        )
        self.regions = RegionIndexer(store, blobs, self.embedder, settings.regions, settings.limits)
        self.indexer = IndexScheduler(store, settings.store.hnsw)
        # Captioning, VQA, grounding: in this process or on Celery workers, per settings.
        self.runner = runner or open_runner(settings, blobs)
        self.tools = ToolClient(
            settings,
            self.runner,
            store,
            AnnotationWriter(store, self.embedder, self.regions),
            model_ready=self.fixture_builds.require,
        )
        # The whole store; ``store`` is a tenant's view of it in a scoped copy (see scoped()).
        self.root_store = store
        self.tenant: str | None = None
        self._scoped: dict[str, Services] = {}
        self._root_services: Services | None = None
        self._scoped_lock = threading.Lock()
        self.resolver: Resolver = system_resolver  # DNS for URL ingest; tests swap it
        self._collection_ready = False
        self._serving_recorded: Serving | None = None
        self._model_failure: tuple[float, MmragError] | None = None
        # One ingest at a time: the check for already-stored ids and the upsert must not
        # interleave with another run's (the same bytes uploaded twice at once would both
        # count as new). Ingest is CPU-bound, so two at once would not be faster anyway.
        self._ingest_lock = threading.Lock()
        # A tenant's copy checks its quota under that lock: two uploads cannot both pass it.
        self.quota = StorageQuota(settings.tenancy, settings.limits.max_image_bytes)
        self._agent: Agent | None = None
        self._agent_lock = threading.Lock()
        # How the agent starts a job it proposed, set where the job service is opened (the
        # API's and the Socket Mode bot's start-up); None: confirming says jobs are unavailable.
        self.job_starter: JobStarter | None = None

    @classmethod
    def open(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings)
        return cls(settings, store, FilesystemBlobStore.from_settings(settings))

    def embedder(self) -> ClipEmbedder:
        """The loaded embedder; the first call loads it and makes sure the collection exists."""
        if self._root_services is not None:
            # A tenant's copy: the root knows the embedder serving now (a swap changes it).
            return self._root_services.embedder()
        failure = self._model_failure
        if failure is not None and time.monotonic() - failure[0] < MODEL_RETRY_AFTER_S:
            raise failure[1]
        with self._active:
            spec = self._embedder_spec
            self._switchable.pin()  # this thread's searches go to the collection of this embedder
        self.fixture_builds.require(spec)
        try:
            embedder = self.models.get(
                spec, lambda: create_embedder(spec, self._embedder_options()), ClipEmbedder
            )
        except MmragError as error:
            self._model_failure = (time.monotonic(), error)
            raise
        self._model_failure = None
        if self._serving_recorded is not embedder.serving:
            record_serving(self.settings.data_dir, embedder.serving)
            self._serving_recorded = embedder.serving
        if not self._collection_ready:
            # Before ensure_collection: its own mismatch error cannot name the embedders.
            check_collection(self.store, spec, embedder.dim)
            self.store.ensure_collection(embedder.dim)
            self._collection_ready = True
        return embedder

    @property
    def serving_embedder_spec(self) -> str:
        """The embedder searches use now: the configured one, except while a swap runs."""
        if self._root_services is not None:
            return self._root_services.serving_embedder_spec  # a swap changes the root's only
        with self._active:
            return self._embedder_spec

    def serve_embedder(self, spec: str) -> None:
        """Serve with ``spec`` (the embedder the collection was filled by, during a swap)."""
        with self._active:
            self._embedder_spec = spec
        self._model_failure = None

    def load_embedder(self, spec: str) -> ClipEmbedder:
        return self.models.get(
            spec, lambda: create_embedder(spec, self._embedder_options()), ClipEmbedder
        )

    def open_collection(self, name: str) -> VectorStore:
        """Another version of the collection (a re-index's target)."""
        return open_store(_with_collection(self.settings, name))

    def switch_collection(
        self, store: VectorStore, spec: str, last_step: Callable[[], None]
    ) -> VectorStore:
        """Serve ``store`` with the embedder ``spec`` from now on. ``last_step`` runs first,
        with ingest and every other write held off until the switch (a re-index's catch-up
        and alias record).
        Returns the store replaced, still open for searches already under way."""
        with self._ingest_lock, self._switchable.frozen():
            last_step()
            with self._active:
                old = self._switchable.switch(store)
                self._embedder_spec = spec
                models = self.settings.models.model_copy(update={"embedder": spec})
                self.settings = self.settings.model_copy(update={"models": models})
            with self._scoped_lock:
                # Tenants' copies hold the settings of before: the next scoped() makes new ones.
                self._scoped.clear()
        return old

    def retire_collection(self, store: VectorStore) -> None:
        self._switchable.retire(store)

    def reindex(
        self,
        spec: str,
        cancel: threading.Event | None = None,
        progress: ReindexProgress | None = None,
        grace_s: float = 60.0,
    ) -> ReindexCounts:
        """Re-embed the collection with ``spec`` while serving it, then switch
        (mmrag/embedder_swap.py)."""
        return self.swap.run(spec, cancel, progress, grace_s)

    def swap_embedder_in_background(self) -> bool:
        """For a server: swap to the configured embedder in the background if the collection
        was filled by another (mmrag/embedder_swap.py)."""
        return self.swap.start_in_background()

    def _embedder_options(self) -> EmbedderOptions:
        models = self.settings.models
        return EmbedderOptions(
            device=models.device,
            cpu_threads=models.cpu_threads,
            batch_size=models.batch_size,
            cache_dir=models.cache_dir,
            backend=models.backend,
            precision=models.precision,
            export_dir=models.export_dir,
        )

    def pipeline(self) -> IngestPipeline:
        embedder = self.embedder()
        # Points record the embedder serving now (the old one during a background swap).
        models = self.settings.models.model_copy(update={"embedder": str(embedder.spec)})
        serving = self.settings.model_copy(update={"models": models})
        return IngestPipeline(embedder, self.store, self.blobs, serving)

    def ingest(
        self, items: Sequence[IngestItem], progress: ProgressCallback | None = None
    ) -> IngestReport:
        with self._ingest_lock:
            self.admit_ingest(len(items), known_bytes(items))
            report = self.pipeline().run(items, progress)
        if report.indexed:
            self.indexer.notify_write(len(report.indexed))
            if self.settings.regions.grid:
                self._grid_regions(report.indexed)
        return report

    def admit_ingest(self, images: int, size: int) -> None:
        """Refuses (QuotaExceeded) ``images`` more of ``size`` known bytes past this tenant's
        quota. ingest checks it itself, under its lock; a caller may ask first, to answer
        before it starts (a streamed upload). The root services (no tenant) have no quota."""
        if self.tenant is not None:
            self.quota.admit(self.tenant, self.store, images, size)

    def _grid_regions(self, image_ids: list[str]) -> None:
        """Grid crops of new images (``regions.grid``): region search before any detection.
        The images are indexed already; a crop that fails is logged, not the ingest's."""
        for image_id in image_ids:
            try:
                self.regions.index(image_id)
            except MmragError as error:
                log.warning("could not index the grid regions of %s: %s", image_id, error)

    def url_fetcher(self) -> UrlFetcher:
        """A fetcher for URL ingest; close it when the request is done."""
        # The root's resolver: a tenant's copy shares it, even one swapped in after the copy.
        return UrlFetcher(self.settings.limits, resolver=self._root.resolver)

    def decode_query_image(self, raw: bytes) -> Image.Image:
        return decode_image(raw, self.settings.limits).image

    def scoped(self, tenant: str) -> Services:
        """These services as ``tenant`` sees them (retrieval/tenants.py): the same models,
        runner, blobs and locks, with the store, search and tools on the tenant's view."""
        checked_tenant(tenant)
        if self.tenant == tenant:
            return self
        root = self._root
        with root._scoped_lock:
            found = root._scoped.get(tenant)
            if found is None:
                found = copy.copy(root)
                view = TenantView(root.root_store, tenant)
                found.store = view
                found.tenant = tenant
                regions = root.settings.regions
                found.search = SearchService(
                    root.embedder,
                    view,
                    root.settings.limits,
                    regions.fusion_weight,
                    regions.min_match,
                )
                found.regions = RegionIndexer(
                    view, root.blobs, root.embedder, regions, root.settings.limits
                )
                found.tools = ToolClient(
                    root.settings,
                    root.runner,
                    view,
                    AnnotationWriter(view, root.embedder, found.regions),
                    model_ready=root.fixture_builds.require,
                )
                found._root_services = root
                root._scoped[tenant] = found
            return found

    @property
    def _root(self) -> Services:
        return self._root_services or self

    def image(self, image_id: str, tenant: str | None = None) -> dict[str, Any]:
        """The image's payload; with a ``tenant``, that tenant's (another tenant's image is
        as unknown as one nobody indexed)."""
        store = self.scoped(tenant).store if tenant is not None else self.store
        found = store.get([image_id])
        if image_id not in found:
            raise NotFound(f"no image with id {image_id}")
        return found[image_id]

    def ingest_for(
        self,
        tenant: str,
        items: Sequence[IngestItem],
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Ingest on behalf of a tenant, into its own points."""
        return self.scoped(tenant).ingest(items, progress)

    def search_for(self, tenant: str, query: SearchQuery) -> SearchResults:
        """A search that sees only ``tenant``'s images."""
        return self.scoped(tenant).search.search(query)

    def delete_image(self, image_id: str) -> None:
        """Deletes the image for this tenant only; the blob goes when no tenant holds it."""
        payload = self.image(image_id)
        with self._ingest_lock:  # an ingest of the same bytes must not lose its blob
            self.store.delete([image_id])
            if holders(self.root_store, image_id) == 0:
                self.blobs.delete(payload["sha256"])

    def agent(self) -> Agent:
        """The question-answering agent, built on first use (LangGraph takes seconds to import).
        One for all tenants: it scopes each question to its caller's tenant."""
        if self._root is not self:
            return self._root.agent()
        with self._agent_lock:
            if self._agent is None:
                from mmrag.agents.agent import Agent
                from mmrag.agents.llm_planner import make_planner

                self._agent = Agent(self, make_planner(self.settings))
            return self._agent

    def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            self.store.info()
            checks["store"] = "ok"
        except MmragError as error:
            checks["store"] = error.detail
        try:
            self.embedder()
            checks["embedder"] = "ok"
        except MmragError as error:
            checks["embedder"] = error.detail
        return checks

    def embedder_serving(self) -> Serving | None:
        """The loaded embedder's backend and precision; None while it is not loaded."""
        if self._root_services is not None:
            return self._root_services.embedder_serving()  # the root loads it (embedder())
        return self._serving_recorded

    def tool_readiness(self) -> dict[str, str]:
        """Whether each tool can run now (informational: search works without them):
        ``"ok"``, ``"building"`` while its fixture model is trained, or why not."""
        return {
            tool: self.fixture_builds.readiness(self.settings.model_spec(TOOL_QUEUES[tool]))
            or self.runner.readiness(tool)
            for tool in TOOL_NAMES
        }

    def build_missing_fixtures(self, on_embedder_ready: Callable[[], None]) -> bool:
        """Start training, in the background, every fixture model this process loads and the
        cache lacks: the embedder's, and the tools' when they run in this process (workers
        build their own). True when the embedder is among them: ``on_embedder_ready`` then
        runs once it is built, and searches answer 503 until then."""
        embedder_spec = self.settings.embedder_spec
        specs = [embedder_spec]
        if self.runner.mode == "embedded":
            specs += [self.settings.model_spec(role) for role in ("vlm", "grounding")]
        embedder_fixture = fixture_name(embedder_spec)

        def on_ready(name: str) -> None:
            if name == embedder_fixture:
                on_embedder_ready()

        queued = self.fixture_builds.start(specs, on_ready)
        return embedder_fixture in queued

    def start_background(self) -> None:
        self.indexer.start()
        self.swap.drop_expired_versions()

    def close(self) -> None:
        self.swap.close()
        if self._agent is not None:
            self._agent.close()
        self.indexer.stop()
        self.runner.close()
        self.models.unload_all()
        self.store.close()


def _with_collection(settings: Settings, collection: str) -> Settings:
    store = settings.store.model_copy(update={"collection": collection})
    return settings.model_copy(update={"store": store})


SERVING_FILE = "embedding.json"


def record_serving(data_dir: Path, serving: Serving) -> None:
    """Note which backend and precision serve the embedder, for ``mmrag stats`` (which does
    not load models): the last process that loaded it wrote this."""
    record = {**asdict(serving), "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    staging = data_dir / f".{SERVING_FILE}.{threading.get_native_id()}"
    try:
        staging.write_text(json.dumps(record) + "\n")
        staging.replace(data_dir / SERVING_FILE)
    except OSError as error:  # informational only: never worth failing a search for
        log.warning("cannot record the embedding backend in %s: %s", data_dir, error)


def last_serving(data_dir: Path) -> dict[str, str] | None:
    """What :func:`record_serving` last wrote, or None."""
    try:
        record = json.loads((data_dir / SERVING_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def data_dir_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
