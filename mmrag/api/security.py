"""Optional API-key auth: off until keys are configured, then every /v1 route needs one.

Keys arrive as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; settings hold only
their SHA-256. No key or an unknown key: 401. A key without the route's scope: 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import Depends, Header, Request

from mmrag.config import ApiKey, Settings
from mmrag.errors import Forbidden, Unauthorized

Scope = Literal["read", "write", "admin"]


def _presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


def identify(settings: Settings, authorization: str | None, x_api_key: str | None) -> ApiKey | None:
    """The configured key the caller presented; None when none was presented (or auth is off).
    An unknown key is refused."""
    if not settings.auth.enabled:
        return None
    presented = _presented_key(authorization, x_api_key)
    if presented is None:
        return None
    key = settings.auth.find(presented)
    if key is None:
        raise Unauthorized("unknown API key")
    return key


def require(scope: Scope) -> Callable[..., ApiKey | None]:
    """A dependency that admits a caller whose key has ``scope`` (or ``admin``)."""

    def check(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> ApiKey | None:
        settings: Settings = request.app.state.settings
        if not settings.auth.enabled:
            return None
        key = identify(settings, authorization, x_api_key)
        if key is None:
            raise Unauthorized("an API key is required (Authorization: Bearer <key>)")
        if scope not in key.scopes and "admin" not in key.scopes:
            raise Forbidden(f"API key {key.name!r} lacks the {scope!r} scope")
        return key

    return check


CanRead = Annotated[ApiKey | None, Depends(require("read"))]
CanWrite = Annotated[ApiKey | None, Depends(require("write"))]
