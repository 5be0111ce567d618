"""Tenants: who owns an image. An API key belongs to one; so does a Slack workspace (``slack:T1``).

One point per (tenant, content), not one shared point listing its tenants. A shared point was
the first design (built for the Slack bot): cheap, but a point has one caption, one caption
vector, one set of boxes and one ``labels`` list, so whatever tenant A's tools wrote back
(a caption, detections) would show in tenant B's results and steer B's caption and hybrid
searches; and "already indexed" would tell B that someone else had the bytes. Keeping
per-tenant annotations inside a shared point would mean per-tenant vectors too, which a point
cannot hold. So each tenant gets its own point:

- the image id callers see stays the content id (32 hex of the SHA-256): same bytes, same id,
  in every tenant;
- the point's key is that id for the default tenant (so stores written before tenants keep
  working unchanged) and a hash of (tenant, id) for every other tenant; the payload keeps the
  content id in ``id`` and names the tenant in ``tenant`` (a keyword payload index, as Qdrant
  recommends for many small tenants, rather than a collection per tenant: one HNSW graph and
  one set of segments however many tenants there are);
- the blob (original, thumbnail) is content-addressed and shared: it is deleted when no point
  of any tenant holds its content id any more.

The cost is one vector per tenant that indexes the same bytes, which is rare outside tests.
Measured (bench/tenant_filter.py, 20k points over 50 tenants, edge store): a tenant's search
is no slower than an unfiltered one over the whole store (the keyword index narrows it), and
the default tenant's ``must_not`` is as fast once its flag has a bool index (it was 6-20x
slower without one).
:class:`TenantView` is the whole store as one tenant sees it; everything above it (ingest,
search, tools, the agent, jobs) works on a view and never sees another tenant's point.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from mmrag.errors import InvalidInput
from mmrag.retrieval.store import (
    REGIONS_FIELD,
    DenseVectorName,
    Filter,
    Hit,
    ImagePoint,
    MatchValue,
    SparseVector,
    StoreInfo,
    VectorStore,
)

DEFAULT_TENANT = "default"
TENANT_FIELD = "tenant"
# Points of every tenant but the default carry this, so the default tenant's view can leave
# them out with one must_not (points written before tenants existed carry no tenant field).
SCOPED_FIELD = "tenant_scoped"
# No "/" or other path characters: tenant names appear in paths, logs and metric labels.
_TENANT = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def checked_tenant(tenant: str) -> str:
    if not _TENANT.fullmatch(tenant):
        raise InvalidInput("a tenant is 1-128 letters, digits or _ . : -")
    return tenant


def point_key(tenant: str, image_id: str) -> str:
    """The store key of ``tenant``'s point for the content ``image_id``."""
    if tenant == DEFAULT_TENANT:
        return image_id
    return hashlib.sha256(f"{tenant}\n{image_id}".encode()).hexdigest()[:32]


def tenant_filter(tenant: str, base: Filter | None = None) -> Filter:
    """``base`` narrowed to ``tenant``'s points."""
    base = base or Filter()
    if checked_tenant(tenant) == DEFAULT_TENANT:
        return Filter(base.must, (*base.must_not, MatchValue(SCOPED_FIELD, True)))
    return Filter((*base.must, MatchValue(TENANT_FIELD, tenant)), base.must_not)


def owned_by(payload: dict[str, Any], tenant: str) -> bool:
    if tenant == DEFAULT_TENANT:
        return not payload.get(SCOPED_FIELD)
    return bool(payload.get(SCOPED_FIELD)) and payload.get(TENANT_FIELD) == tenant


class TenantView:
    """The store as ``tenant`` sees it: a VectorStore keyed by content ids, holding only the
    tenant's points. Closing a view closes nothing (the store is shared)."""

    def __init__(self, store: VectorStore, tenant: str) -> None:
        self.store = store
        self.tenant = checked_tenant(tenant)
        self.backend_name = store.backend_name

    def _key(self, image_id: str) -> str:
        return point_key(self.tenant, image_id)

    def _stamp(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.tenant == DEFAULT_TENANT:
            return payload
        return {**payload, TENANT_FIELD: self.tenant, SCOPED_FIELD: True}

    def _hit(self, hit: Hit) -> Hit:
        return replace(hit, image_id=str(hit.payload.get("id", hit.image_id)))

    def _filter(self, filter: Filter | None) -> Filter:
        return tenant_filter(self.tenant, filter)

    def ensure_collection(self, dim: int) -> None:
        self.store.ensure_collection(dim)

    def upsert(self, points: Sequence[ImagePoint]) -> None:
        self.store.upsert(
            [
                replace(
                    point, image_id=self._key(point.image_id), payload=self._stamp(point.payload)
                )
                for point in points
            ]
        )

    def set_payload(self, image_id: str, payload: dict[str, Any]) -> None:
        self.store.set_payload(self._key(image_id), payload)

    def set_text(
        self, image_id: str, text_vector: npt.NDArray[np.float32], sparse: SparseVector
    ) -> None:
        self.store.set_text(self._key(image_id), text_vector, sparse)

    def get(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        keys = {self._key(image_id): image_id for image_id in image_ids}
        found = self.store.get(list(keys))
        # The ownership check too: a caller who computes another tenant's point key and asks
        # for it as a content id must find nothing.
        return {
            keys[key]: payload for key, payload in found.items() if owned_by(payload, self.tenant)
        }

    def get_vector(self, image_id: str, name: DenseVectorName) -> npt.NDArray[np.float32] | None:
        if not self.get([image_id]):
            return None
        return self.store.get_vector(self._key(image_id), name)

    def existing(self, image_ids: Sequence[str]) -> set[str]:
        return set(self.get(image_ids))

    def delete(self, image_ids: Sequence[str]) -> None:
        self.store.delete([self._key(image_id) for image_id in self.get(image_ids)])

    def search(
        self,
        vector: npt.NDArray[np.float32],
        using: DenseVectorName,
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Hit]:
        hits = self.store.search(vector, using, limit, offset, self._filter(filter))
        return [self._hit(hit) for hit in hits]

    def search_sparse(
        self, vector: SparseVector, limit: int, offset: int = 0, filter: Filter | None = None
    ) -> list[Hit]:
        hits = self.store.search_sparse(vector, limit, offset, self._filter(filter))
        return [self._hit(hit) for hit in hits]

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
        hits = self.store.search_hybrid(
            dense,
            using,
            sparse,
            limit,
            offset,
            self._filter(filter),
            region_weight,
            region_floor,
        )
        return [self._hit(hit) for hit in hits]

    def set_regions(
        self,
        image_id: str,
        vectors: npt.NDArray[np.float32],
        regions: Sequence[dict[str, Any]],
    ) -> None:
        self.store.set_regions(self._key(image_id), vectors, regions)

    def search_regions(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Hit]:
        hits = self.store.search_regions(vector, limit, offset, self._filter(filter))
        return [self._hit(hit) for hit in hits]

    def count_regions(self, filter: Filter | None = None) -> int:
        return self.store.count_regions(self._filter(filter))

    def count(self, filter: Filter | None = None) -> int:
        return self.store.count(self._filter(filter))

    def scroll(self, filter: Filter | None = None, batch: int = 256) -> Iterator[Hit]:
        return (self._hit(hit) for hit in self.store.scroll(self._filter(filter), batch))

    def optimize(self) -> bool:
        return self.store.optimize()

    def info(self) -> StoreInfo:
        return self.store.info()

    def close(self) -> None:
        """The store is shared: its owner closes it."""


def holders(store: VectorStore, image_id: str) -> int:
    """How many points, of any tenant, hold the content ``image_id`` (its blob's users)."""
    return store.count(Filter((MatchValue("id", image_id),)))


LEGACY_TENANTS_FIELD = "tenants"


def migrate_shared_points(store: VectorStore) -> int:
    """Points of the first design (one shared point listing its tenants in ``tenants``) each
    become a point per listed tenant, vectors and payload copied; the shared point stays the
    default tenant's, as the API without tenancy saw it. Idempotent; the number of points
    made. Run with the service stopped (``mmrag tenants migrate``).

    Region vectors are not copied: the copies carry no ``regions`` payload either, so a
    ``regions`` job rebuilds them rather than taking the point for done while region search
    cannot find it."""
    from mmrag.retrieval import sparse  # the BM25 model loads only when a point needs it
    from mmrag.retrieval.reindex import caption_texts

    made = 0
    for hit in store.scroll(Filter(must_not=(MatchValue(SCOPED_FIELD, True),))):
        tenants = [str(tenant) for tenant in hit.payload.get(LEGACY_TENANTS_FIELD) or []]
        image = store.get_vector(hit.image_id, "image") if tenants else None
        if image is None:
            continue
        text = store.get_vector(hit.image_id, "text")
        # The same texts ingest and re-index make the sparse vector of (the model caption too).
        captions = caption_texts(hit.payload)
        words = sparse.encode_document(captions) if captions else None
        dropped = (LEGACY_TENANTS_FIELD, REGIONS_FIELD)
        payload = {k: v for k, v in hit.payload.items() if k not in dropped}
        for tenant in tenants:
            view = TenantView(store, tenant)
            if not view.existing([hit.image_id]):
                view.upsert([ImagePoint(hit.image_id, image, payload, text, words)])
                made += 1
        store.set_payload(hit.image_id, {LEGACY_TENANTS_FIELD: []})
    return made
