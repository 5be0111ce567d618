"""``VectorStore`` on qdrant-edge: the Qdrant engine in-process, one shard directory per collection.

Concurrency. The binding holds the GIL inside every call, so shard calls never run in
parallel; the locks here are about the shard's lifecycle, not the binding's safety:

- ``_writes`` admits one writer at a time, and is also held while a consistent copy of the
  shard is taken for an index build (writes wait, searches do not);
- ``_access`` is shared by every shard call and taken exclusively to swap in a rebuilt shard,
  reopen it or close it;
- ``_building`` is held by the one build in flight, and by whatever must not overlap one
  (closing, reopening with other settings); ``_build_ended`` wakes the writers that wait,
  before taking ``_writes``, for a build to take in the ``max_unindexed`` points ahead of them.

Index builds (``optimize``) run in a child process on a copy (see ``edge_build``), because the
engine's optimize() holds the GIL for the whole build. Writes made while the child works are
applied to the live shard and logged; the swap replays them onto the built copy.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe

from mmrag.config import StoreSettings
from mmrag.errors import DimensionMismatchError, InvalidInput, NotFound, Unavailable
from mmrag.retrieval import edge_migrate, edge_shard
from mmrag.retrieval.edge_build import run_build
from mmrag.retrieval.edge_filters import to_edge_filter
from mmrag.retrieval.heap import release_free_heap
from mmrag.retrieval.huge_pages import HugePageLoad
from mmrag.retrieval.indexing import IndexBacklog
from mmrag.retrieval.rwlock import ReadWriteLock
from mmrag.retrieval.store import (
    FILTER_GRAPH_FIELDS,
    IMAGE_VECTOR,
    INDEXED_FIELDS,
    REGION_VECTOR,
    REGIONS_FIELD,
    SPARSE_VECTOR,
    TEXT_VECTOR,
    DenseVectorName,
    FieldKind,
    Filter,
    Hit,
    ImagePoint,
    SparseVector,
    StoreInfo,
    filters_without_graphs,
    image_id_of,
)
from mmrag.retrieval.store_common import (
    RRF_K,
    RecordReads,
    best_region,
    check_page,
    checked_dense,
    checked_point_id,
    checked_regions,
    checked_sparse,
    fusion_weights,
    hybrid_candidates,
    json_payload,
)
from mmrag.retrieval.tenants import TENANT_FIELD

log = logging.getLogger(__name__)

BuildPhase = Literal["idle", "copying", "building", "swapping"]


@dataclass(frozen=True)
class BuildReport:
    """How the last index build went; the pauses it caused are ``copy_s`` and ``swap_s``."""

    optimized: bool
    copy_s: float  # writes waited this long
    build_s: float  # the child process; nothing waited
    swap_s: float  # writes waited this long; searches only for a reference swap
    replayed_operations: int


_ACORN = qe.AcornSearchParams(enable=True)
# Upserts go to the engine in slices: bounds how long one call holds the GIL.
_UPSERT_SLICE = 256


class EdgeVectorStore(RecordReads):
    backend_name: str = "edge"

    def __init__(self, directory: Path, settings: StoreSettings) -> None:
        """Open the collection ``settings.collection`` under ``directory`` if it exists.

        Raises ``Unavailable`` when another process has it open. A missing collection is
        created by :meth:`ensure_collection`, which needs the vector size.
        """
        self._settings = settings
        self._paths = edge_shard.ShardPaths(directory, settings.collection)
        self._dir_lock = edge_shard.DirectoryLock(self._paths.lock)
        self._dir_lock.acquire()
        try:
            self._paths.remove_stale()
            self._live = self._paths.live()
            self._shard: qe.EdgeShard | None = None
            if self._live:
                with self._huge_pages("the opened store"):
                    self._shard = edge_shard.load(self._live)
        except BaseException:
            self._dir_lock.release()
            raise
        self._dim: int | None = None
        self._writes = threading.Lock()
        self._access = ReadWriteLock()
        self._building = threading.Lock()
        self._build_ended = threading.Condition()
        self._cancel_build = threading.Event()
        self._replay: list[qe.UpdateOperation] | None = None
        self._replay_points = 0
        self._last_write = time.monotonic()
        self._closing = False
        self._closed = False
        self._phase: BuildPhase = "idle"
        self.last_build: BuildReport | None = None
        self._unindexed = _estimate_unindexed(self._shard) if self._shard else 0

    # -- lifecycle -------------------------------------------------------------------------

    def ensure_collection(self, dim: int) -> None:
        if dim < 1:
            raise InvalidInput(f"vector size must be positive, got {dim}")
        if self._dim == dim:
            return
        # A build started before this (by the scheduler, at start-up) would publish the shard
        # as it was, undoing a reload with new settings or a migration: it is stopped first.
        self.cancel_optimize()
        with self._building, self._writes, self._access.exclusive():
            if self._closing:
                raise Unavailable("the vector store is closed")
            if self._dim is not None:
                raise self._mismatch(dim, f"this store already serves {self._dim}-d vectors")
            config = edge_shard.shard_config(dim, self._settings)
            if self._shard is None or self._live is None:
                generation = self._paths.next_generation()
                self._shard = edge_shard.create(generation, config)
                self._paths.publish(generation)
                self._live = generation
            else:
                self._probe_dim(self._shard, dim)
                if edge_migrate.missing_vectors(self._shard, dim, (REGION_VECTOR,)):
                    # Made before region vectors: copied into a generation that has them.
                    self._shard, self._live = edge_migrate.migrate(
                        self._shard, self._paths, self._live, config
                    )
                elif not edge_shard.config_matches(self._live, config):
                    # Reopen with the full config: it applies the current HNSW settings.
                    self._shard.close()
                    with self._huge_pages("the reloaded store"):
                        self._shard = edge_shard.load(self._live, config)
            self._create_payload_indexes(self._shard)
            self._dim = dim

    def close(self) -> None:
        # _closing before the event: optimize() clears the event and then reads _closing.
        self._closing = True
        self._cancel_build.set()
        with self._building, self._writes, self._access.exclusive():
            if self._closed:
                return
            self._closed = True
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None
            self._dir_lock.release()

    # -- writes ----------------------------------------------------------------------------

    def upsert(self, points: Sequence[ImagePoint]) -> None:
        dim = self._require_dim()
        converted = [self._point(point, dim) for point in points]
        self._wait_for_index_room()
        with self._writes:
            for start in range(0, len(converted), _UPSERT_SLICE):
                batch = converted[start : start + _UPSERT_SLICE]
                self._apply(qe.UpdateOperation.upsert_points(batch), len(batch))

    def set_payload(self, image_id: str, payload: dict[str, Any]) -> None:
        pid = checked_point_id(image_id)
        with self._writes:
            self._require_point(pid, image_id)
            self._apply(qe.UpdateOperation.set_payload([pid], json_payload(payload)), 0)

    def set_text(
        self, image_id: str, text_vector: npt.NDArray[np.float32], sparse: SparseVector
    ) -> None:
        dim = self._require_dim()
        pid = checked_point_id(image_id)
        vectors: dict[str, qe.NamedVector] = {
            TEXT_VECTOR: checked_dense(text_vector, dim, TEXT_VECTOR).tolist(),
            SPARSE_VECTOR: _edge_sparse(sparse),
        }
        self._wait_for_index_room()
        with self._writes:
            self._require_point(pid, image_id)
            self._apply(qe.UpdateOperation.update_vectors([qe.PointVectors(pid, vectors)]), 1)

    def set_regions(
        self,
        image_id: str,
        vectors: npt.NDArray[np.float32],
        regions: Sequence[dict[str, Any]],
    ) -> None:
        rows = checked_regions(vectors, regions, self._require_dim())
        pid = checked_point_id(image_id)
        self._wait_for_index_room()
        with self._writes:
            self._require_point(pid, image_id)
            if rows:
                update = qe.PointVectors(pid, {REGION_VECTOR: rows})
                self._apply(qe.UpdateOperation.update_vectors([update]), 1)
            else:
                self._apply(qe.UpdateOperation.delete_vectors([pid], [REGION_VECTOR]), 0)
            payload = json_payload({REGIONS_FIELD: list(regions)})
            self._apply(qe.UpdateOperation.set_payload([pid], payload), 0)

    def delete(self, image_ids: Sequence[str]) -> None:
        pids: list[qe.PointId] = [checked_point_id(image_id) for image_id in image_ids]
        if not pids:
            return
        with self._writes:
            self._apply(qe.UpdateOperation.delete_points(pids), 0)

    # -- reads -----------------------------------------------------------------------------

    def search(
        self,
        vector: npt.NDArray[np.float32],
        using: DenseVectorName,
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Hit]:
        check_page(limit, offset)
        query = qe.Query.Nearest(
            checked_dense(vector, self._require_dim(), using).tolist(), using=using
        )
        return self._query(
            qe.QueryRequest(
                limit=limit,
                offset=offset,
                query=query,
                filter=to_edge_filter(filter),
                params=self._search_params(filter),
                with_payload=True,
            )
        )

    def search_regions(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Hit]:
        check_page(limit, offset)
        dense = checked_dense(vector, self._require_dim(), REGION_VECTOR)
        return self._query(
            qe.QueryRequest(
                limit=limit,
                offset=offset,
                query=qe.Query.Nearest([dense.tolist()], using=REGION_VECTOR),
                filter=to_edge_filter(filter),
                params=self._search_params(filter),
                with_payload=True,
                with_vector=[REGION_VECTOR],
            ),
            dense,
        )

    def count_regions(self, filter: Filter | None = None) -> int:
        with self._access.shared():
            shard = self._shard_or_none()
            return 0 if shard is None else _count_having(shard, REGION_VECTOR, filter)

    def search_sparse(
        self, vector: SparseVector, limit: int, offset: int = 0, filter: Filter | None = None
    ) -> list[Hit]:
        check_page(limit, offset)
        query = qe.Query.Nearest(_edge_sparse(vector), using=SPARSE_VECTOR)
        return self._query(
            qe.QueryRequest(
                limit=limit,
                offset=offset,
                query=query,
                filter=to_edge_filter(filter),
                with_payload=True,
            )
        )

    def search_hybrid(
        self,
        dense: npt.NDArray[np.float32],
        using: DenseVectorName,
        sparse: SparseVector,
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
        region_weight: float = 0.0,
        region_floor: float | None = None,
    ) -> list[Hit]:
        check_page(limit, offset)
        weights = fusion_weights(region_weight)
        edge_filter = to_edge_filter(filter)
        depth = hybrid_candidates(limit, offset)
        checked = checked_dense(dense, self._require_dim(), using)
        dense_query = checked.tolist()
        prefetches = [
            qe.Prefetch(
                limit=depth,
                query=qe.Query.Nearest(dense_query, using=using),
                filter=edge_filter,
                params=self._search_params(filter),
            ),
            qe.Prefetch(
                limit=depth,
                query=qe.Query.Nearest(_edge_sparse(sparse), using=SPARSE_VECTOR),
                filter=edge_filter,
            ),
        ]
        if weights is not None:
            prefetches.append(
                qe.Prefetch(
                    limit=depth,
                    query=qe.Query.Nearest([dense_query], using=REGION_VECTOR),
                    filter=edge_filter,
                    params=self._search_params(filter),
                    score_threshold=region_floor,
                )
            )
        return self._query(
            qe.QueryRequest(
                limit=limit,
                offset=offset,
                prefetches=prefetches,
                # The stub lists Fusion, not its nested Rrf class, which is what the engine takes.
                query=qe.Fusion.Rrf(k=RRF_K, weights=weights),  # type: ignore[arg-type]
                filter=edge_filter,
                with_payload=True,
                with_vector=[REGION_VECTOR] if weights is not None else None,
            ),
            checked if weights is not None else None,
        )

    def count(self, filter: Filter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=to_edge_filter(filter))
        with self._access.shared():
            shard = self._shard_or_none()
            return 0 if shard is None else _engine(lambda: shard.count(request))

    def scroll(self, filter: Filter | None = None, batch: int = 256) -> Iterator[Hit]:
        if batch < 1:
            raise InvalidInput(f"batch must be at least 1, got {batch}")
        edge_filter = to_edge_filter(filter)
        offset: qe.PointId | None = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=batch, filter=edge_filter, with_payload=True, with_vector=False
            )
            # The lock is held per page, never across a yield: a slow consumer blocks nothing.
            with self._access.shared():
                shard = self._shard_or_none()
                if shard is None:
                    return
                records, offset = _engine(partial(shard.scroll, request))
            for record in records:
                yield Hit(image_id_of(str(record.id)), 0.0, dict(record.payload or {}))
            if offset is None:
                return

    def info(self) -> StoreInfo:
        with self._access.shared():
            shard = self._shard_or_none()
            if shard is None:
                return StoreInfo(0, 0, 0, self.backend_name, {"path": str(self._live)})
            engine_info = _engine(shard.info)
            sparse_count = _count_having(shard, SPARSE_VECTOR)
        return StoreInfo(
            points=engine_info.points_count,
            # The engine also counts sparse vectors, which are indexed on write, never by HNSW.
            indexed_vectors=max(0, engine_info.indexed_vectors_count - sparse_count),
            segments=engine_info.segments_count,
            backend=self.backend_name,
            extra={
                "path": str(self._live),
                "unindexed_points": self._unindexed,
                "build_phase": self._phase,
                "last_build": asdict(self.last_build) if self.last_build else None,
            },
        )

    # -- index builds ----------------------------------------------------------------------

    def index_backlog(self) -> IndexBacklog:
        with self._access.shared():
            shard = self._shard_or_none()
            engine_info = None if shard is None else _engine(shard.info)
        return IndexBacklog(
            points=0 if engine_info is None else engine_info.points_count,
            unindexed_points=self._unindexed,
            seconds_since_write=time.monotonic() - self._last_write,
            segments=0 if engine_info is None else engine_info.segments_count,
        )

    def merge_segments(self) -> bool:
        """Build as :meth:`optimize` does, and merge every indexed segment into one graph."""
        return self._build(merge_all=True)

    def optimize(self) -> bool:
        """Build HNSW for everything written since the last build, in a child process.

        Blocks the calling thread until the new shard is live; searches and writes go on
        meanwhile. Writes wait twice: while the shard is copied, and while the built copy is
        opened and given the writes made during the build (``last_build`` has both times).
        Searches only wait for a reference to change. Returns False when nothing was built,
        when another build is running, or when ``close()`` or ``cancel_optimize()`` cut it
        short.
        """
        return self._build(merge_all=False)

    def _build(self, *, merge_all: bool) -> bool:
        if not self._building.acquire(blocking=False):
            return False
        try:
            self._cancel_build.clear()
            if self._closing or self._shard is None:
                return False
            started = time.monotonic()
            self._phase = "copying"
            target = self._snapshot_for_build()
            copied = time.monotonic()
            self._phase = "building"
            try:
                result = run_build(target, self._cancel_build, merge_all=merge_all)
            except BaseException:
                self._abandon_build(target)
                raise
            if result.cancelled or not result.optimized:
                # Nothing built: the live shard already has every write the copy has, and
                # publishing the copy would only cost its load (a million points: seconds).
                self._abandon_build(target)
                return False
            built = time.monotonic()
            self._phase = "swapping"
            replayed = self._swap_in_build(target)
            self.last_build = BuildReport(
                optimized=result.optimized,
                copy_s=round(copied - started, 3),
                build_s=round(built - copied, 3),
                swap_s=round(time.monotonic() - built, 3),
                replayed_operations=replayed,
            )
            log.info("HNSW build of %s: %s", target, self.last_build)
            return result.optimized
        finally:
            self._phase = "idle"
            self._building.release()
            with self._build_ended:
                self._build_ended.notify_all()

    def cancel_optimize(self) -> None:
        """Stop a running build (its child process is killed); the live shard is untouched."""
        self._cancel_build.set()

    def _wait_for_index_room(self) -> None:
        """Hold a write back while ``max_unindexed`` points wait for a build that is running.

        A bulk fill then moves at the pace of the builds, and the RAM the unindexed points
        take (and the scan every search makes of them) stays bounded; the bound is soft by
        one call's points. Without a build in flight nothing waits: the scheduler starts one
        long before this limit, and a store nobody builds (HNSW disabled) must still take
        writes. A build that outlasts ``max_unindexed_wait_s`` fails the write as retryable.
        """
        hnsw = self._settings.hnsw
        if self._unindexed < hnsw.max_unindexed or self._phase == "idle":
            return
        log.info("writes wait for the index build: %d points unindexed", self._unindexed)
        with self._build_ended:
            # _closing too: close() takes _building, and the writer must not wait for that.
            room = self._build_ended.wait_for(
                lambda: (
                    self._unindexed < hnsw.max_unindexed or self._phase == "idle" or self._closing
                ),
                timeout=hnsw.max_unindexed_wait_s,
            )
        if not room:
            raise Unavailable(
                f"{self._unindexed} images wait for the search index build, which is still "
                "running; retry once it has finished",
                retry_after_s=60,
            )

    def _snapshot_for_build(self) -> Path:
        """Copy the live shard into the next generation; writes wait, searches do not."""
        with self._writes:
            with self._access.shared():
                shard = self._require_shard()
                _engine(shard.flush)
            if self._live is None:
                raise Unavailable("the vector store has no live shard to index")
            target = self._paths.next_generation()
            try:
                edge_shard.copy_tree(self._live, target)
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)  # a full disk, say
                raise
            self._replay = []
            self._replay_points = 0
        return target

    def _abandon_build(self, target: Path) -> None:
        with self._writes:
            self._replay = None
        shutil.rmtree(target, ignore_errors=True)

    def _swap_in_build(self, target: Path) -> int:
        """Publish the built generation with the writes made meanwhile; returns how many.

        Writes wait while the new shard is opened and caught up; searches keep using the old
        one until the last moment, so they wait only for a reference to change.
        """
        with self._writes:
            replay, self._replay = self._replay or [], None
            shard: qe.EdgeShard | None = None
            try:
                # The copy carries the live config (edge_config.json): no config to pass.
                with self._huge_pages("the rebuilt store"):
                    shard = edge_shard.load(target)
                for operation in replay:
                    shard.update(operation)
                if replay:
                    shard.flush()
                self._paths.publish(target)
            except BaseException:
                log.exception("publishing the rebuilt shard failed; keeping the live one")
                if shard is not None:
                    shard.close()
                shutil.rmtree(target, ignore_errors=True)
                raise
            with self._access.exclusive():
                previous, self._shard = self._shard, shard
                previous_dir, self._live = self._live, target
            self._unindexed = self._replay_points
        if previous is not None:
            previous.close()
            release_free_heap()
        if previous_dir is not None:
            shutil.rmtree(previous_dir, ignore_errors=True)
        return len(replay)

    # -- helpers ---------------------------------------------------------------------------

    def _huge_pages(self, what: str) -> HugePageLoad:
        return HugePageLoad(what, enabled=self._settings.huge_pages)

    def _apply(self, operation: qe.UpdateOperation, points: int) -> None:
        """Apply one write; the caller holds ``_writes``."""
        with self._access.shared():
            shard = self._require_shard()
            _engine(lambda: shard.update(operation))
        if self._replay is not None:
            self._replay.append(operation)
            self._replay_points += points
        self._unindexed += points
        self._last_write = time.monotonic()

    def _query(
        self, request: qe.QueryRequest, region_query: npt.NDArray[np.float32] | None = None
    ) -> list[Hit]:
        """The hits; with ``region_query``, each names its best-matching region."""
        with self._access.shared():
            shard = self._shard_or_none()
            if shard is None:
                return []
            points = _engine(lambda: shard.query(request))
        hits = []
        for point in points:
            payload = dict(point.payload or {})
            region = None
            if region_query is not None and isinstance(point.vector, dict):
                region = best_region(region_query, point.vector.get(REGION_VECTOR), payload)
            hits.append(Hit(image_id_of(str(point.id)), float(point.score), payload, region))
        return hits

    def _records(
        self, image_ids: Sequence[str], *, payload: bool, vectors: bool | list[str]
    ) -> list[qe.Record]:
        pids: list[qe.PointId] = [checked_point_id(image_id) for image_id in image_ids]
        if not pids:
            return []
        with self._access.shared():
            shard = self._shard_or_none()
            if shard is None:
                return []
            return _engine(lambda: shard.retrieve(pids, payload, vectors))

    def _require_point(self, pid: str, image_id: str) -> None:
        with self._access.shared():
            shard = self._require_shard()
            found = _engine(lambda: shard.retrieve([pid], False, False))
        if not found:
            raise NotFound(f"no image with id {image_id} in the store")

    def _point(self, point: ImagePoint, dim: int) -> qe.Point:
        vectors: dict[str, qe.NamedVector] = {
            IMAGE_VECTOR: checked_dense(point.image_vector, dim, IMAGE_VECTOR).tolist()
        }
        if point.text_vector is not None:
            vectors[TEXT_VECTOR] = checked_dense(point.text_vector, dim, TEXT_VECTOR).tolist()
        if point.sparse is not None:
            vectors[SPARSE_VECTOR] = _edge_sparse(point.sparse)
        return qe.Point(checked_point_id(point.image_id), vectors, json_payload(point.payload))

    def _search_params(self, filter: Filter | None) -> qe.SearchParams:
        acorn = filters_without_graphs(filter)
        quantization = None
        if self._settings.quantization != "none":
            # Rescored with the full vectors: int8 only picks the candidates.
            quantization = qe.QuantizationSearchParams(
                rescore=True, oversampling=self._settings.oversampling
            )
        return qe.SearchParams(
            hnsw_ef=self._settings.hnsw.ef_for(acorn),
            quantization=quantization,
            acorn=_ACORN if acorn else None,
        )

    def _shard_or_none(self) -> qe.EdgeShard | None:
        if self._closed:
            raise Unavailable("the vector store is closed")
        return self._shard

    def _require_shard(self) -> qe.EdgeShard:
        shard = self._shard_or_none()
        if shard is None:
            raise Unavailable(
                f"the collection {self._settings.collection!r} does not exist yet: "
                "ensure_collection(dim) creates it"
            )
        return shard

    def _require_dim(self) -> int:
        if self._dim is None:
            raise Unavailable("the vector store is not ready: call ensure_collection(dim) first")
        return self._dim

    def _probe_dim(self, shard: qe.EdgeShard, dim: int) -> None:
        for name in (IMAGE_VECTOR, TEXT_VECTOR):
            request = qe.QueryRequest(limit=1, query=qe.Query.Nearest([0.0] * dim, using=name))
            try:
                shard.query(request)
            except Exception as error:  # the engine names the size it expected
                raise self._mismatch(dim, str(error)) from error

    def _mismatch(self, dim: int, reason: str) -> DimensionMismatchError:
        return DimensionMismatchError(
            f"the collection at {self._paths.root} does not take {dim}-d vectors ({reason}); "
            "it was built by another embedder: configure that one again and run "
            "`mmrag reindex --embedder <spec>`, or use a new collection name or data dir"
        )

    def _create_payload_indexes(self, shard: qe.EdgeShard) -> None:
        present = shard.info().payload_schema
        for field, kind in INDEXED_FIELDS.items():
            wanted = _index_params(field, kind)
            current = present.get(field)
            if current is not None and _graphs(current.params) == _graphs(wanted):
                continue
            if current is not None:
                # Made before FILTER_GRAPH_FIELDS, with per-value graphs on every field: remade
                # once (seconds at a million points), so the next build leaves them out.
                log.info("re-indexing payload field %r without per-value graphs", field)
                shard.update(qe.UpdateOperation.delete_field_index(field))
            shard.update(qe.UpdateOperation.create_field_index(field, wanted))


def _graphs(params: object) -> bool:
    # An index made from a bare schema type has no params: the engine's default, graphs on.
    return bool(getattr(params, "enable_hnsw", True))


def _index_params(field: str, kind: FieldKind) -> qe.PayloadSchemaType | qe.PayloadSchemaParams:
    graphs = field in FILTER_GRAPH_FIELDS
    if kind == "keyword":
        # is_tenant lays a tenant's points out together, as on a Qdrant server (store_qdrant).
        return qe.KeywordIndexParams(is_tenant=field == TENANT_FIELD, enable_hnsw=graphs)
    if kind == "integer":
        return qe.IntegerIndexParams(lookup=True, range=True, enable_hnsw=graphs)
    if kind == "datetime":
        return qe.DatetimeIndexParams(enable_hnsw=graphs)
    if kind == "bool":
        return qe.BoolIndexParams(enable_hnsw=graphs)
    return qe.PayloadSchemaType.Text


def _edge_sparse(vector: SparseVector) -> qe.SparseVector:
    checked = checked_sparse(vector)
    return qe.SparseVector(list(checked.indices), [float(v) for v in checked.values])


def _estimate_unindexed(shard: qe.EdgeShard) -> int:
    """Points outside any HNSW graph, estimated after a restart from the engine's counts."""
    engine_info = _engine(shard.info)
    points = engine_info.points_count
    dense_total = points + _count_having(shard, TEXT_VECTOR) + _count_having(shard, REGION_VECTOR)
    dense_indexed = engine_info.indexed_vectors_count - _count_having(shard, SPARSE_VECTOR)
    if dense_indexed <= 0:
        return points
    return min(points, max(0, dense_total - dense_indexed))


def _count_having(shard: qe.EdgeShard, vector_name: str, filter: Filter | None = None) -> int:
    having = to_edge_filter(filter, having=vector_name)
    return _engine(lambda: shard.count(qe.CountRequest(exact=True, filter=having)))


_T = TypeVar("_T")


def _engine(call: Callable[[], _T]) -> _T:
    """Run one engine call; its bare ``Exception`` becomes ``Unavailable`` with the message."""
    try:
        return call()
    except Exception as error:
        raise Unavailable(f"vector store error: {error}") from error
