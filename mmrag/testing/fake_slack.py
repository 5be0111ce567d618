"""Slack's Web API and file hosts, played by a small HTTP server on loopback.

It speaks the real protocol the bot's ``slack_sdk.WebClient`` uses: ``POST /api/<method>``
with a Bearer token and a JSON, form or query body, answered with ``{"ok": ...}`` JSON. It
records every call, hands out upload URLs on itself (``files.getUploadURLExternal``), keeps
what is POSTed there, and serves shared files (``GET /files/<name>``) to the bot's token only.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TEAM = "T0TEAM0001"
BOT_USER = "U0BOT00001"
BOT_ID = "B0BOT00001"
BOT_TOKEN = "xoxb-test-token-never-logged"
APP_TOKEN = "xapp-test-app-token"
OAUTH_CLIENT_ID = "1111.2222"
OAUTH_SECRET = "oauth-client-secret"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    reply: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.perf_counter)  # when the call arrived


@dataclass
class Served:
    """A file the fake hosts serve: bytes, or a redirect elsewhere."""

    body: bytes = b""
    redirect: str | None = None
    content_type: str = "image/png"
    hide_length: bool = False  # no Content-Length: the body ends when the connection closes


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id -> bytes POSTed
    files: dict[str, Served] = field(default_factory=dict)  # /files/<name>
    downloads: list[tuple[str, str | None]] = field(default_factory=list)  # (path, auth)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # channel -> messages
    file_info: dict[str, dict[str, Any]] = field(default_factory=dict)  # files.info: id -> file
    # method -> how many of its next calls get HTTP 429 (Slack's rate limit), and the count
    throttle: dict[str, int] = field(default_factory=dict)
    throttled: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    socket_url: str = ""  # what apps.connections.open hands out (a local WebSocket server)
    # bot token -> (team, bot user, bot id): the configured workspace, then OAuth installs
    bots: dict[str, tuple[str, str, str]] = field(
        default_factory=lambda: {BOT_TOKEN: (TEAM, BOT_USER, BOT_ID)}
    )
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- what tests read -----------------------------------------------------------------------

    def of(self, method: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.method == method]

    def wait_for(self, condition: Callable[[FakeSlack], Any], timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = condition(self)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"timed out; calls so far: {[c.method for c in self.calls]}")

    def file_url(self, name: str) -> str:
        return f"{self.url}/files/{name}"

    # -- the protocol --------------------------------------------------------------------------

    def answer(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        call = Call(method, args, token)
        with self.lock:
            serial = next(self._counter)
            call.reply = self._reply(method, args, token, serial)
            self.calls.append(call)
        return call.reply

    def _reply(
        self, method: str, args: dict[str, Any], token: str | None, serial: int
    ) -> dict[str, Any]:
        if method == "apps.connections.open":
            if token != APP_TOKEN:  # only the app-level token opens a connection
                return {"ok": False, "error": "not_allowed_token_type"}
            return {"ok": True, "url": self.socket_url}
        if method == "oauth.v2.access":
            return self._install(args)
        if token not in self.bots:
            return {"ok": False, "error": "invalid_auth"}
        team, bot_user, bot_id = self.bots[token]
        ts = f"{1_700_000_000 + serial}.{serial:06d}"
        match method:
            case "response_url":
                return {"ok": True}
            case "auth.test":
                return {"ok": True, "team_id": team, "user_id": bot_user, "bot_id": bot_id}
            case "chat.postMessage":
                return {"ok": True, "channel": args.get("channel"), "ts": ts}
            case "chat.update":
                return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
            case "chat.postEphemeral":
                return {"ok": True, "message_ts": ts}
            case "files.getUploadURLExternal":
                file_id = f"F{serial:09d}"
                return {
                    "ok": True,
                    "file_id": file_id,
                    "upload_url": f"{self.url}/upload/{file_id}",
                }
            case "files.info":
                described = self.file_info.get(str(args.get("file")))
                if described is None:
                    return {"ok": False, "error": "file_not_found"}
                return {"ok": True, "file": described}
            case "conversations.history":
                messages = self.history.get(str(args.get("channel")), [])
                return {"ok": True, "messages": messages, "has_more": False}
            case "files.completeUploadExternal":
                files = json.loads(args["files"])
                return {
                    "ok": True,
                    "files": [{"id": f["id"], "title": f.get("title")} for f in files],
                }
        return {"ok": False, "error": "unknown_method"}

    def _install(self, args: dict[str, Any]) -> dict[str, Any]:
        """The OAuth code exchange: the code names the workspace that installs (tests)."""
        if args.get("client_id") != OAUTH_CLIENT_ID or args.get("client_secret") != OAUTH_SECRET:
            return {"ok": False, "error": "invalid_client_id"}
        team = str(args["code"])
        token = f"xoxb-installed-{team}"
        self.bots[token] = (team, f"U{team[1:]}", f"B{team[1:]}")
        return {
            "ok": True,
            "app_id": "A0APP00001",
            "access_token": token,
            "token_type": "bot",
            "scope": "app_mentions:read,chat:write,commands,files:read,files:write",
            "bot_user_id": f"U{team[1:]}",
            "team": {"id": team, "name": f"Workspace {team}"},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": "U0INSTALLER"},
        }


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the test reads the recorded calls instead

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def _send(
            self, status: int, body: bytes, headers: dict[str, str], length: bool = True
        ) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            split = urlsplit(self.path)
            raw = self._body()
            if split.path == "/respond":  # a slash command's response_url
                fake.answer("response_url", json.loads(raw or b"{}"), BOT_TOKEN)
                self._send(200, b"ok", {"Content-Type": "text/plain"})
                return
            if split.path.startswith("/upload/"):
                with fake.lock:
                    fake.uploads[split.path.rsplit("/", 1)[1]] = raw
                self._send(200, b"OK", {"Content-Type": "text/plain"})
                return
            if not split.path.startswith("/api/"):
                self._send(404, b"", {})
                return
            args: dict[str, Any] = dict(parse_qsl(split.query))
            kind = self.headers.get("content-type", "")
            if "json" in kind:
                args.update(json.loads(raw or b"{}"))
            else:
                args.update(parse_qsl(raw.decode()))
            auth = self.headers.get("authorization", "")
            if auth.startswith("Basic "):  # oauth.v2.access: the client's id and secret
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                args.update(client_id=client_id, client_secret=secret)
            token = auth[7:] if auth.startswith("Bearer ") else args.pop("token", None)
            method = split.path[len("/api/") :]
            with fake.lock:
                limited = fake.throttle.get(method, 0) > 0
                if limited:
                    fake.throttle[method] -= 1
                    fake.throttled.append(method)
            if limited:
                body = json.dumps({"ok": False, "error": "ratelimited"}).encode()
                self._send(429, body, {"Content-Type": "application/json", "Retry-After": "1"})
                return
            answer = fake.answer(method, args, token)
            self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            with fake.lock:
                fake.downloads.append((path, self.headers.get("authorization")))
            served = fake.files.get(path.removeprefix("/files/"))
            if served is None:
                self._send(404, b"", {})
            elif self.headers.get("authorization", "")[7:] not in fake.bots:
                self._send(403, b"<html>sign in</html>", {"Content-Type": "text/html"})
            elif served.redirect is not None:
                self._send(302, b"", {"Location": served.redirect})
            else:
                headers = {"Content-Type": served.content_type}
                self._send(200, served.body, headers, length=not served.hide_length)

    return Handler


class FakeSlackServer:
    def __init__(self) -> None:
        self.fake = FakeSlack()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.fake))
        self._server.daemon_threads = True
        self.fake.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self.fake

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
