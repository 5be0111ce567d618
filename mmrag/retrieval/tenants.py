"""Tenants: who may see an image. A Slack workspace is one (``slack:T0123``); API keys can be.

An image id is its content, so two tenants who index the same bytes share one point: the
point's ``tenants`` payload field lists every tenant that indexed it, and a tenant's searches
and lookups only ever see points that list it. Images indexed with no tenant (the REST API
without tenancy, the sample gallery) list none and are invisible to every tenant.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from mmrag.errors import InvalidInput, NotFound
from mmrag.retrieval.store import Filter, MatchValue, VectorStore

TENANTS_FIELD = "tenants"
_TENANT = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def checked_tenant(tenant: str) -> str:
    if not _TENANT.fullmatch(tenant):
        raise InvalidInput("a tenant is 1-128 letters, digits or _ . : -")
    return tenant


def tenant_filter(tenant: str, base: Filter | None = None) -> Filter:
    """``base`` narrowed to the points ``tenant`` indexed (a keyword list matches any element)."""
    base = base or Filter()
    return Filter((*base.must, MatchValue(TENANTS_FIELD, checked_tenant(tenant))), base.must_not)


def belongs_to(payload: dict[str, Any], tenant: str) -> bool:
    return tenant in payload.get(TENANTS_FIELD, [])


class TenantGrants:
    """Adds a tenant to images' payloads. Read-modify-write of a list, so one lock keeps two
    tenants indexing the same bytes at once from dropping each other."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self._lock = threading.Lock()

    def grant(self, image_ids: Iterable[str], tenant: str) -> None:
        checked_tenant(tenant)
        with self._lock:
            ids = list(dict.fromkeys(image_ids))
            payloads = self._store.get(ids)
            for image_id in ids:
                payload = payloads.get(image_id)
                if payload is None:
                    raise NotFound(f"no image with id {image_id}")
                tenants = list(payload.get(TENANTS_FIELD, []))
                if tenant not in tenants:
                    self._store.set_payload(image_id, {TENANTS_FIELD: [*tenants, tenant]})
