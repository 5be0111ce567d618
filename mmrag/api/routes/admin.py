"""``/v1/admin``: what an admin key may see across tenants (tenants and their usage)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mmrag.api.deps import ServicesDep
from mmrag.api.openapi import V1_PROBLEMS
from mmrag.api.security import IsAdmin
from mmrag.tenancy.keys import KeyStore
from mmrag.tenancy.usage import tenant_usage

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
    listing = await run_in_threadpool(tenant_usage, keys, services.root_store)
    return TenantList(
        items=[
            TenantUsage(
                name=tenant.name,
                created=_moment(tenant.created),
                deleted=_moment(tenant.deleted),
                active_keys=tenant.active_keys,
                images=tenant.images,
                bytes=tenant.bytes,
            )
            for tenant in listing
        ]
    )
