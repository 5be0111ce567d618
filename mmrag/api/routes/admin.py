"""``/v1/admin``: what an admin key may see across tenants (tenants and their usage)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mmrag.api.deps import ServicesDep
from mmrag.api.openapi import V1_PROBLEMS
from mmrag.api.security import IsAdmin
from mmrag.retrieval.tenants import DEFAULT_TENANT
from mmrag.tenancy.keys import KeyStore
from mmrag.tenancy.usage import usage_of

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=V1_PROBLEMS)


class TenantUsage(BaseModel):
    name: str
    created: datetime | None = Field(description="when its first key was made")
    deleted: datetime | None
    active_keys: int
    images: int
    bytes: int = Field(description="original bytes of its images")


class TenantList(BaseModel):
    items: list[TenantUsage]


def _moment(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


@router.get("/tenants", response_model=TenantList)
async def list_tenants(request: Request, services: ServicesDep, _: IsAdmin) -> TenantList:
    keys: KeyStore = request.app.state.keys

    def listing() -> TenantList:
        known = {tenant.name: tenant for tenant in keys.tenants()}
        items = []
        for name in sorted({DEFAULT_TENANT, *known}):
            usage = usage_of(services.scoped(name).store)
            record = known.get(name)
            items.append(
                TenantUsage(
                    name=name,
                    created=_moment(record.created) if record else None,
                    deleted=_moment(record.deleted) if record else None,
                    active_keys=record.active_keys if record else 0,
                    images=usage.images,
                    bytes=usage.bytes,
                )
            )
        return TenantList(items=items)

    return await run_in_threadpool(listing)
