"""Typed dependencies: routes ask for what they need, the app state holds one of each."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mmrag.config import Settings
from mmrag.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
