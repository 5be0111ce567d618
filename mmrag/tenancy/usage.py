"""What a tenant holds: images and their original bytes, read from its view of the store;
and every tenant's, for the admin listings of the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from mmrag.retrieval.store import VectorStore
from mmrag.retrieval.tenants import DEFAULT_TENANT, TenantView
from mmrag.tenancy.keys import KeyStore


@dataclass(frozen=True)
class Usage:
    images: int
    bytes: int


def usage_of(view: VectorStore) -> Usage:
    """One pass over the tenant's points (payloads only). Qdrant has no sum aggregation, so
    bytes cost a scroll: fine for an admin listing and a quota check on upload at the sizes
    tenants hold here; a counter kept beside the key store is the next step past that."""
    images = 0
    total = 0
    for hit in view.scroll():
        images += 1
        total += int(hit.payload.get("bytes", 0))
    return Usage(images, total)


@dataclass(frozen=True)
class TenantUsage:
    """A tenant as an admin listing shows it: its key-store record, if a key was ever made
    for it, and what it holds."""

    name: str
    created: float | None
    deleted: float | None
    active_keys: int
    images: int
    bytes: int


def tenant_usage(keys: KeyStore, store: VectorStore) -> list[TenantUsage]:
    """Every tenant (the default one, those of the key store) and its usage, by name; the
    one listing behind GET /v1/admin/tenants and ``mmrag tenants list``. ``store`` is the
    whole store: each tenant is read through its own view of it."""
    known = {tenant.name: tenant for tenant in keys.tenants()}
    listing = []
    for name in sorted({DEFAULT_TENANT, *known}):
        usage = usage_of(TenantView(store, name))
        record = known.get(name)
        listing.append(
            TenantUsage(
                name=name,
                created=record.created if record else None,
                deleted=record.deleted if record else None,
                active_keys=record.active_keys if record else 0,
                images=usage.images,
                bytes=usage.bytes,
            )
        )
    return listing
