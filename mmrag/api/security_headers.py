"""Security headers on every response.

Every response says ``X-Content-Type-Options: nosniff``, so a browser never runs an upload or
an API body as something it is not (an "image" that is really HTML). The web page gets a
strict Content-Security-Policy: scripts, styles and connections from this origin only, no
inline script, no plugins, no framing; images also from ``blob:`` (authenticated images are
fetched with the key and shown as blob URLs) and ``data:``. Everything else (JSON, image
content, exports) gets a policy that allows nothing, so a body opened directly in a tab can
run nothing either. The interactive API docs (``/docs``, ``/redoc``) load FastAPI's Swagger
UI with inline script, so they keep their own defaults.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
_DOCS = ("/docs", "/redoc")


def policy_for(path: str) -> str | None:
    if path == "/" or path.startswith("/web/"):
        return PAGE_POLICY
    if path.startswith(_DOCS):
        return None
    return API_POLICY


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = policy_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if policy is not None:
                    headers["Content-Security-Policy"] = policy
            await send(message)

        await self.app(scope, receive, send_with_headers)
