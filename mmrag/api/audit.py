"""The audit trail, and the refusal of keys in query strings.

One structured line (JSON, logger ``mmrag.audit``) for every write and every denied request:
the key's name and tenant, the method, the route, the status. Never a secret: keys travel in
headers, which are not logged, and a query string that carries one is refused and replaced in
the request before anything (the access log included) sees it.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmrag.api.problems import problem

log = logging.getLogger("mmrag.audit")

KEY_PARAMETERS = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "x-api-key", "authorization"}
)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_DENIED = frozenset({401, 403, 429})
REDACTED = "[redacted]"


class Audit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Redacted on every path; refused under /v1, whose routes declare the 401.
        if _redact_keys(scope) and str(scope.get("path", "")).startswith("/v1/"):
            response = problem(
                401,
                "Unauthorized",
                "API keys in the query string are refused (URLs are logged and kept in "
                "browser history): send Authorization: Bearer <key>",
                {"WWW-Authenticate": "Bearer"},
            )
            self._record(scope, 401)
            await response(scope, receive, send)
            return

        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if not recorded and (scope["method"] not in _READS or status in _DENIED):
                self._record(scope, status)
            recorded = True

        async def recording_send(message: Message) -> None:
            # Before the status goes out: the line exists even if the client goes away.
            if message["type"] == "http.response.start":
                record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            record(500)  # nothing was sent: the error handler outside answers 500

    def _record(self, scope: Scope, status: int) -> None:
        caller = scope.get("state", {}).get("caller")
        log.info(
            json.dumps(
                {
                    "event": "audit",
                    "key": getattr(caller, "name", None),
                    "key_id": getattr(caller, "key_id", None),
                    "tenant": getattr(caller, "tenant", None),
                    "method": scope["method"],
                    "route": _route(scope),
                    "status": status,
                    "client": (scope.get("client") or ("-",))[0],
                }
            )
        )


def _route(scope: Scope) -> str:
    """The route's template when one matched (ids are not secrets, but templates group)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else str(scope.get("path", ""))


def _redact_keys(scope: Scope) -> bool:
    """True when the query string names a key parameter; it is then replaced in the scope,
    which the server's access log reads too."""
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return False
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    if not any(name.lower() in KEY_PARAMETERS for name, _ in pairs):
        return False
    kept = [(n, REDACTED if n.lower() in KEY_PARAMETERS else v) for n, v in pairs]
    scope["query_string"] = urlencode(kept).encode("latin-1")
    return True
