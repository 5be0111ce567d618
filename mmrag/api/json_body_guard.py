"""The JSON bounds (retrieval/json_bounds.py) on every JSON request body, before FastAPI or a
route parses it: a body nested thousands of levels deep would otherwise end in RecursionError.

Runs outside the body size cap: it reads at most ``max_json_bytes`` (far below that cap) and
answers problem+json itself, then replays the body it read to the app.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmrag.api.problems import problem, status_of
from mmrag.config import LimitSettings
from mmrag.errors import MmragError, TooLarge
from mmrag.retrieval.json_bounds import check_json_text


def is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class JsonBounds:
    def __init__(self, app: ASGIApp, limits: LimitSettings) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_json(dict(scope["headers"]).get(b"content-type", b"")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.limits.max_json_bytes:
                    raise TooLarge(
                        f"the body is over {self.limits.max_json_bytes} bytes of JSON, the limit"
                    )
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            check_json_text(body, self.limits.max_json_depth, self.limits.max_json_bytes)
        except MmragError as error:
            headers = {"Connection": "close"} if more else None
            await problem(status_of(error), error.title, error.detail, headers)(
                scope, receive, send
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
