"""API-key auth: who the caller is (a key of a tenant), and whether it may do what it asks.

Keys arrive as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, never in the query
string (a URL ends up in logs and browser history: such a request is refused, unlogged).
Two sources of keys, both holding only hashes: the key store (``mmrag keys``, shared by every
API process through the data dir, so a revocation holds at once) and the keys in settings,
which belong to the default tenant. Auth is off while neither holds a key: every caller is
then the default tenant with every scope.

No key or an unknown one: 401. A key without the route's scope: 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from mmrag.config import Settings
from mmrag.errors import Forbidden, Unauthorized
from mmrag.retrieval.tenants import DEFAULT_TENANT
from mmrag.tenancy.keys import ANONYMOUS_NAME, SCOPES, KeyStore, Scope

log = logging.getLogger("mmrag.audit")

# Scopes a scope implies: a write key may also run jobs (as before there was a jobs scope).
_IMPLIED: dict[Scope, frozenset[Scope]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"write", "jobs"}),
    "jobs": frozenset({"jobs"}),
    "admin": frozenset(SCOPES),
}


@dataclass(frozen=True)
class Caller:
    name: str  # the key's name (audit logs, conversation owner); "anonymous" with auth off
    tenant: str
    scopes: frozenset[Scope]
    key_id: str | None = None

    def may(self, scope: Scope) -> bool:
        return any(scope in _IMPLIED[held] for held in self.scopes)


ANONYMOUS = Caller(ANONYMOUS_NAME, DEFAULT_TENANT, frozenset(SCOPES))


def _presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key is not None:
        if not x_api_key.strip():
            raise Unauthorized("the X-API-Key header is empty")
        return x_api_key.strip()
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip() or " " in credentials.strip():
        raise Unauthorized("malformed Authorization header: use 'Bearer <key>'")
    return credentials.strip()


def auth_enabled(settings: Settings, keys: KeyStore) -> bool:
    return settings.auth.enabled or keys.any_keys()


def identify(
    settings: Settings, keys: KeyStore, authorization: str | None, x_api_key: str | None
) -> Caller | None:
    """The caller the presented key makes; None when none was presented or auth is off.
    An unknown, revoked or expired key (or one of a deleted tenant) is refused."""
    if not auth_enabled(settings, keys):
        return None
    presented = _presented_key(authorization, x_api_key)
    if presented is None:
        return None
    stored = keys.find(presented)
    if stored is not None:
        return Caller(stored.name, stored.tenant, stored.scopes, stored.id)
    configured = settings.auth.find(presented)
    if configured is not None:
        return Caller(configured.name, DEFAULT_TENANT, frozenset(configured.scopes))
    # Revoked, expired, or of a deleted tenant: said the same way, revealing nothing.
    raise Unauthorized("unknown API key")


def current_caller(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Caller:
    """The caller of a /v1 route (FastAPI caches it per request: the scope check and the
    tenant's services share one lookup)."""
    settings: Settings = request.app.state.settings
    keys: KeyStore = request.app.state.keys
    try:
        caller = identify(settings, keys, authorization, x_api_key)
        if caller is None and auth_enabled(settings, keys):
            raise Unauthorized("an API key is required (Authorization: Bearer <key>)")
    except Unauthorized:
        request.state.caller = None
        raise
    request.state.caller = caller or ANONYMOUS
    return caller or ANONYMOUS


def require(scope: Scope) -> Callable[..., Caller]:
    """A dependency that admits a caller whose key has ``scope`` (or one implying it)."""

    def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.may(scope):
            raise Forbidden(f"API key {caller.name!r} lacks the {scope!r} scope")
        return caller

    return check


CanRead = Annotated[Caller, Depends(require("read"))]
CanWrite = Annotated[Caller, Depends(require("write"))]
CanRunJobs = Annotated[Caller, Depends(require("jobs"))]
IsAdmin = Annotated[Caller, Depends(require("admin"))]
