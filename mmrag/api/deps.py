"""Typed dependencies: routes ask for what they need, the app state holds one of each."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mmrag.api.security import Caller, current_caller
from mmrag.config import Settings
from mmrag.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_tenant_services(
    request: Request, caller: Annotated[Caller, Depends(current_caller)]
) -> Services:
    """The services as the caller's tenant sees them (retrieval/tenants.py)."""
    services: Services = request.app.state.services
    return services.scoped(caller.tenant)


ServicesDep = Annotated[Services, Depends(get_services)]
# Every /v1 route that reads or writes images: only the caller's tenant's.
TenantServicesDep = Annotated[Services, Depends(get_tenant_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
