"""``VectorStore`` on a Qdrant server or cluster through ``qdrant-client``.

``url=":memory:"`` runs the client's local mode: a pure-Python brute force that speaks the same
client API, used by the tests (too slow to serve: PLATFORM.md measured 200-250 ms a search at
100k points). The server builds its HNSW graph by itself, so ``optimize()`` has nothing to do.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from mmrag.config import StoreSettings
from mmrag.errors import DimensionMismatchError, InvalidInput, NotFound, Unavailable
from mmrag.retrieval.qdrant_filters import to_qdrant_filter
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
    FULL_SCAN_THRESHOLD_KB,
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

_T = TypeVar("_T")
MEMORY = ":memory:"
_TIMEOUT_S = 10
_UPSERT_SLICE = 256
_ACORN = models.AcornSearchParams(enable=True)


PayloadIndexParams = (
    models.KeywordIndexParams
    | models.IntegerIndexParams
    | models.DatetimeIndexParams
    | models.BoolIndexParams
)


def _index_params(field: str, kind: FieldKind) -> models.PayloadSchemaType | PayloadIndexParams:
    graphs = field in FILTER_GRAPH_FIELDS  # per-value graphs: see FILTER_GRAPH_FIELDS
    if kind == "keyword":
        # The tenant field as Qdrant's multitenancy guide says: is_tenant lays a tenant's
        # points out together, so its filtered searches read less.
        return models.KeywordIndexParams(
            type=models.KeywordIndexType.KEYWORD,
            is_tenant=field == TENANT_FIELD,
            enable_hnsw=graphs,
        )
    if kind == "integer":
        return models.IntegerIndexParams(
            type=models.IntegerIndexType.INTEGER, lookup=True, range=True, enable_hnsw=graphs
        )
    if kind == "datetime":
        return models.DatetimeIndexParams(
            type=models.DatetimeIndexType.DATETIME, enable_hnsw=graphs
        )
    if kind == "bool":
        return models.BoolIndexParams(type=models.BoolIndexType.BOOL, enable_hnsw=graphs)
    return models.PayloadSchemaType.TEXT


class QdrantServerStore(RecordReads):
    backend_name: str = "qdrant"

    def __init__(self, settings: StoreSettings) -> None:
        """Cheap: nothing is contacted until the first call."""
        if not settings.url:
            raise Unavailable("the qdrant store backend needs MMRAG_STORE__URL (or ':memory:')")
        self._settings = settings
        self._name = settings.collection
        self._url = settings.url
        if settings.url == MEMORY:
            self._client = QdrantClient(location=MEMORY)
            # Local mode keeps plain dicts and lists with no locking of its own.
            self._lock: contextlib.AbstractContextManager[Any] = threading.Lock()
        else:
            api_key = settings.api_key.get_secret_value() if settings.api_key else None
            self._client = QdrantClient(
                url=settings.url, api_key=api_key, timeout=_TIMEOUT_S, check_compatibility=False
            )
            self._lock = contextlib.nullcontext()  # the HTTP client is thread-safe
        self._dim: int | None = None
        # False for a collection created before region vectors (the server cannot add one).
        self._has_regions = True

    # -- lifecycle -------------------------------------------------------------------------

    def ensure_collection(self, dim: int) -> None:
        if dim < 1:
            raise InvalidInput(f"vector size must be positive, got {dim}")
        if self._dim == dim:
            return
        if self._dim is not None:
            raise self._mismatch(dim, f"this store already serves {self._dim}-d vectors")
        if self._call(lambda: self._client.collection_exists(self._name)):
            self._check_dims(dim)
        else:
            self._create(dim)
        self._create_payload_indexes()
        self._dim = dim

    def close(self) -> None:
        with self._lock:
            self._client.close()

    # -- writes ----------------------------------------------------------------------------

    def upsert(self, points: Sequence[ImagePoint]) -> None:
        dim = self._require_dim()
        structs = [self._point(point, dim) for point in points]
        for start in range(0, len(structs), _UPSERT_SLICE):
            batch = structs[start : start + _UPSERT_SLICE]
            self._call(partial(self._client.upsert, self._name, batch, wait=True))

    def set_payload(self, image_id: str, payload: dict[str, Any]) -> None:
        pid = checked_point_id(image_id)
        self._require_point(pid, image_id)
        body = json_payload(payload)
        self._call(lambda: self._client.set_payload(self._name, body, points=[pid], wait=True))

    def set_text(
        self, image_id: str, text_vector: npt.NDArray[np.float32], sparse: SparseVector
    ) -> None:
        dim = self._require_dim()
        pid = checked_point_id(image_id)
        vectors: models.VectorStruct = {
            TEXT_VECTOR: checked_dense(text_vector, dim, TEXT_VECTOR).tolist(),
            SPARSE_VECTOR: _sparse(sparse),
        }
        self._require_point(pid, image_id)
        update = [models.PointVectors(id=pid, vector=vectors)]
        self._call(lambda: self._client.update_vectors(self._name, update, wait=True))

    def set_regions(
        self,
        image_id: str,
        vectors: npt.NDArray[np.float32],
        regions: Sequence[dict[str, Any]],
    ) -> None:
        rows = checked_regions(vectors, regions, self._require_dim())
        pid = checked_point_id(image_id)
        self._require_regions()
        self._require_point(pid, image_id)
        if rows:
            update = [models.PointVectors(id=pid, vector={REGION_VECTOR: rows})]
            self._call(lambda: self._client.update_vectors(self._name, update, wait=True))
        else:
            self._call(
                lambda: self._client.delete_vectors(
                    self._name, [REGION_VECTOR], models.PointIdsList(points=[pid]), wait=True
                )
            )
        body = json_payload({REGIONS_FIELD: list(regions)})
        self._call(lambda: self._client.set_payload(self._name, body, points=[pid], wait=True))

    def delete(self, image_ids: Sequence[str]) -> None:
        pids: list[models.ExtendedPointId] = [checked_point_id(image_id) for image_id in image_ids]
        if not pids or not self._exists():
            return
        selector = models.PointIdsList(points=pids)
        self._call(lambda: self._client.delete(self._name, selector, wait=True))

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
        query = checked_dense(vector, self._require_dim(), using).tolist()
        query_filter = to_qdrant_filter(filter)
        return self._query(
            lambda: self._client.query_points(
                self._name,
                query=query,
                using=using,
                limit=limit,
                offset=offset,
                query_filter=query_filter,
                search_params=self._search_params(filter),
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
        self._require_regions()
        query_filter = to_qdrant_filter(filter)
        return self._query(
            lambda: self._client.query_points(
                self._name,
                query=[dense.tolist()],
                using=REGION_VECTOR,
                limit=limit,
                offset=offset,
                query_filter=query_filter,
                search_params=self._search_params(filter),
                with_payload=True,
                with_vectors=[REGION_VECTOR],
            ),
            dense,
        )

    def count_regions(self, filter: Filter | None = None) -> int:
        if not self._exists() or not self._has_regions:
            return 0
        must: list[models.Condition] = [models.HasVectorCondition(has_vector=REGION_VECTOR)]
        asked = to_qdrant_filter(filter)
        if asked is not None:
            must.append(asked)
        having = models.Filter(must=must)
        result = self._call(lambda: self._client.count(self._name, count_filter=having, exact=True))
        return result.count

    def search_sparse(
        self, vector: SparseVector, limit: int, offset: int = 0, filter: Filter | None = None
    ) -> list[Hit]:
        check_page(limit, offset)
        query = _sparse(vector)
        query_filter = to_qdrant_filter(filter)
        return self._query(
            lambda: self._client.query_points(
                self._name,
                query=query,
                using=SPARSE_VECTOR,
                limit=limit,
                offset=offset,
                query_filter=query_filter,
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
        if weights is not None:
            self._require_regions()
        query_filter = to_qdrant_filter(filter)
        depth = hybrid_candidates(limit, offset)
        checked = checked_dense(dense, self._require_dim(), using)
        prefetch = [
            models.Prefetch(
                query=checked.tolist(),
                using=using,
                limit=depth,
                filter=query_filter,
                params=self._search_params(filter),
            ),
            models.Prefetch(
                query=_sparse(sparse), using=SPARSE_VECTOR, limit=depth, filter=query_filter
            ),
        ]
        # FusionQuery(RRF) uses the server's k (2): store_common.RRF_K gives the edge the same.
        fusion: models.FusionQuery | models.RrfQuery = models.FusionQuery(fusion=models.Fusion.RRF)
        if weights is not None:
            prefetch.append(
                models.Prefetch(
                    query=[checked.tolist()],
                    using=REGION_VECTOR,
                    limit=depth,
                    filter=query_filter,
                    params=self._search_params(filter),
                    score_threshold=region_floor,
                )
            )
            fusion = models.RrfQuery(rrf=models.Rrf(k=RRF_K, weights=weights))
        return self._query(
            lambda: self._client.query_points(
                self._name,
                prefetch=prefetch,
                query=fusion,
                limit=limit,
                offset=offset,
                query_filter=query_filter,
                with_payload=True,
                with_vectors=[REGION_VECTOR] if weights is not None else False,
            ),
            checked if weights is not None else None,
        )

    def count(self, filter: Filter | None = None) -> int:
        if not self._exists():
            return 0
        count_filter = to_qdrant_filter(filter)
        result = self._call(
            lambda: self._client.count(self._name, count_filter=count_filter, exact=True)
        )
        return result.count

    def scroll(self, filter: Filter | None = None, batch: int = 256) -> Iterator[Hit]:
        if batch < 1:
            raise InvalidInput(f"batch must be at least 1, got {batch}")
        if not self._exists():
            return
        scroll_filter = to_qdrant_filter(filter)
        offset: models.ExtendedPointId | None = None
        while True:
            page = partial(
                self._client.scroll,
                self._name,
                scroll_filter=scroll_filter,
                limit=batch,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
            records, offset = self._call(page)
            for record in records:
                yield Hit(image_id_of(str(record.id)), 0.0, dict(record.payload or {}))
            if offset is None:
                return

    def optimize(self) -> bool:
        return False  # the server's optimizers index in the background

    def info(self) -> StoreInfo:
        if not self._exists():
            return StoreInfo(0, 0, 0, self.backend_name, {"url": self._url})
        collection = self._call(lambda: self._client.get_collection(self._name))
        return StoreInfo(
            points=collection.points_count or 0,
            indexed_vectors=collection.indexed_vectors_count or 0,
            segments=collection.segments_count,
            backend=self.backend_name,
            extra={"url": self._url, "status": str(collection.status)},
        )

    # -- helpers ---------------------------------------------------------------------------

    def _call(self, call: Callable[[], _T]) -> _T:
        """Run one client call; transport and server failures become ``Unavailable``."""
        try:
            with self._lock:
                return call()
        except (ResponseHandlingException, httpx.HTTPError) as error:
            raise Unavailable(f"cannot reach Qdrant at {self._url}: {error}") from error
        except UnexpectedResponse as error:
            detail = error.content.decode(errors="replace")[:300]
            raise Unavailable(f"Qdrant answered {error.status_code}: {detail}") from error

    def _query(
        self,
        call: Callable[[], models.QueryResponse],
        region_query: npt.NDArray[np.float32] | None = None,
    ) -> list[Hit]:
        """The hits; with ``region_query``, each names its best-matching region."""
        if not self._exists():
            return []
        hits = []
        for point in self._call(call).points:
            payload = dict(point.payload or {})
            region = None
            if region_query is not None and isinstance(point.vector, dict):
                region = best_region(region_query, point.vector.get(REGION_VECTOR), payload)
            hits.append(Hit(image_id_of(str(point.id)), float(point.score), payload, region))
        return hits

    def _require_regions(self) -> None:
        if not self._has_regions:
            raise Unavailable(
                f"the Qdrant collection {self._name!r} was created before region vectors and "
                "a server cannot add a vector to a collection: index into a new collection "
                "(MMRAG_STORE__COLLECTION) to use region search; image, caption and hybrid "
                "search keep working here"
            )

    def _records(
        self, image_ids: Sequence[str], *, payload: bool, vectors: bool | list[str]
    ) -> list[models.Record]:
        pids: list[models.ExtendedPointId] = [checked_point_id(image_id) for image_id in image_ids]
        if not pids or not self._exists():
            return []
        return self._call(
            lambda: self._client.retrieve(
                self._name, pids, with_payload=payload, with_vectors=vectors
            )
        )

    def _require_point(self, pid: str, image_id: str) -> None:
        if not self._retrieve_ids([pid]):
            raise NotFound(f"no image with id {image_id} in the store")

    def _retrieve_ids(self, pids: list[models.ExtendedPointId]) -> list[models.Record]:
        if not self._exists():
            return []
        return self._call(
            lambda: self._client.retrieve(self._name, pids, with_payload=False, with_vectors=False)
        )

    def _exists(self) -> bool:
        # Once ensured, the collection is taken to exist; before, every read asks (another
        # process may create it), and a missing one reads as empty, as in the edge store.
        if self._dim is not None:
            return True
        return self._call(lambda: self._client.collection_exists(self._name))

    def _create(self, dim: int) -> None:
        hnsw = self._settings.hnsw
        vector = models.VectorParams(size=dim, distance=models.Distance.COSINE, on_disk=True)
        regions = models.VectorParams(
            size=dim,
            distance=models.Distance.COSINE,
            on_disk=True,
            multivector_config=models.MultiVectorConfig(
                comparator=models.MultiVectorComparator.MAX_SIM
            ),
        )
        try:
            self._call(
                lambda: self._client.create_collection(
                    self._name,
                    vectors_config={
                        IMAGE_VECTOR: vector,
                        TEXT_VECTOR: vector,
                        REGION_VECTOR: regions,
                    },
                    sparse_vectors_config={
                        SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                    hnsw_config=models.HnswConfigDiff(
                        m=hnsw.m,
                        ef_construct=hnsw.ef_construct,
                        full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
                    ),
                )
            )
        except Unavailable as error:
            # Another process created it between our check and our create: check it instead.
            if not isinstance(error.__cause__, UnexpectedResponse) or (
                error.__cause__.status_code != 409
            ):
                raise
            self._check_dims(dim)

    def _check_dims(self, dim: int) -> None:
        collection = self._call(lambda: self._client.get_collection(self._name))
        vectors = collection.config.params.vectors
        sizes = (
            {name: params.size for name, params in vectors.items()}
            if isinstance(vectors, dict)
            else {}
        )
        for name in (IMAGE_VECTOR, TEXT_VECTOR):
            if sizes.get(name) != dim:
                raise self._mismatch(dim, f"its {name!r} vectors: {sizes.get(name)}")
        sparse = collection.config.params.sparse_vectors or {}
        if SPARSE_VECTOR not in sparse:
            raise self._mismatch(dim, f"no {SPARSE_VECTOR!r} sparse vectors")
        self._has_regions = sizes.get(REGION_VECTOR) == dim

    def _create_payload_indexes(self) -> None:
        collection = self._call(lambda: self._client.get_collection(self._name))
        present = set(collection.payload_schema)
        for field, kind in INDEXED_FIELDS.items():
            if field in present:
                continue
            with warnings.catch_warnings():
                # Local mode warns that it ignores payload indexes; the server builds them.
                warnings.simplefilter("ignore", UserWarning)
                schema = _index_params(field, kind)
                self._call(
                    partial(
                        self._client.create_payload_index,
                        self._name,
                        field,
                        schema,
                        wait=True,
                    )
                )

    def _mismatch(self, dim: int, reason: str) -> DimensionMismatchError:
        return DimensionMismatchError(
            f"the Qdrant collection {self._name!r} does not take {dim}-d vectors ({reason}); "
            "it was built by another embedder: configure that one again and run "
            "`mmrag reindex --embedder <spec>`, or use a new collection name"
        )

    def _point(self, point: ImagePoint, dim: int) -> models.PointStruct:
        vectors: dict[str, list[float] | models.SparseVector] = {
            IMAGE_VECTOR: checked_dense(point.image_vector, dim, IMAGE_VECTOR).tolist()
        }
        if point.text_vector is not None:
            vectors[TEXT_VECTOR] = checked_dense(point.text_vector, dim, TEXT_VECTOR).tolist()
        if point.sparse is not None:
            vectors[SPARSE_VECTOR] = _sparse(point.sparse)
        return models.PointStruct(
            id=checked_point_id(point.image_id), vector=vectors, payload=json_payload(point.payload)
        )

    def _search_params(self, filter: Filter | None) -> models.SearchParams | None:
        if self._url == MEMORY:
            return None  # local mode is brute force and warns about search params
        acorn = filters_without_graphs(filter)
        return models.SearchParams(
            hnsw_ef=self._settings.hnsw.ef_for(acorn),
            acorn=_ACORN if acorn else None,
        )

    def _require_dim(self) -> int:
        if self._dim is None:
            raise Unavailable("the vector store is not ready: call ensure_collection(dim) first")
        return self._dim


def _sparse(vector: SparseVector) -> models.SparseVector:
    checked = checked_sparse(vector)
    return models.SparseVector(
        indices=list(checked.indices), values=[float(v) for v in checked.values]
    )
