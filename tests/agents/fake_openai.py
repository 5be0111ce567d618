"""A fake OpenAI-compatible chat server on loopback: real HTTP, the real wire format of
``POST /v1/chat/completions`` (tool calls, text with log-probabilities, streamed as server-sent
events when the request asks) and ``GET /v1/models``, and a reply chosen by the test or
computed from the request by ``responder`` (the engine tests answer with fixture models)."""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

Reply = dict[str, Any] | str


def tool_call_reply(calls: list[tuple[str, str]]) -> dict[str, Any]:
    """A chat completion whose message calls ``(name, arguments-as-JSON-text)`` in order."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{number}",
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        }
                        for number, (name, arguments) in enumerate(calls)
                    ],
                },
            }
        ],
    }


def captioning_proposal(query: str, limit: int) -> dict[str, Any]:
    """An LLM plan that searches ``query`` (``limit`` hits) and proposes captioning them."""
    search = json.dumps({"query": query, "limit": limit})
    return tool_call_reply([("retrieve", search), ("start_job", '{"task": "caption"}')])


def text_reply(text: str, score: float | None = None, model: str = "fake") -> dict[str, Any]:
    """A chat completion answering ``text``; with ``score``, log-probabilities of its tokens
    (whitespace-separated words here) whose mean probability is ``score``."""
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
    }
    if score is not None:
        choice["logprobs"] = {
            "content": [
                {"token": token, "logprob": math.log(score), "bytes": None, "top_logprobs": []}
                for token in _tokens(text)
            ]
        }
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [choice],
    }


def _tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


def stream_events(reply: dict[str, Any]) -> list[str]:
    """A completion as the ``data:`` events of a streamed answer: a role chunk, one chunk per
    token (with its log-probability), a finish chunk, then ``[DONE]``."""
    choice = reply["choices"][0]
    logprobs = (choice.get("logprobs") or {}).get("content")
    text = choice["message"]["content"] or ""
    pieces = [(entry["token"], [entry]) for entry in logprobs] if logprobs else [(text, None)]

    def chunk(delta: dict[str, Any], logprob: Any = None, finish: str | None = None) -> str:
        body = {
            "id": reply["id"],
            "object": "chat.completion.chunk",
            "created": 0,
            "model": reply["model"],
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None if logprob is None else {"content": logprob},
                    "finish_reason": finish,
                }
            ],
        }
        return json.dumps(body)

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": token}, logprob) for token, logprob in pieces]
    events += [chunk({}, None, choice.get("finish_reason") or "stop"), "[DONE]"]
    return events


class FakeOpenAI:
    def __init__(self) -> None:
        self.reply: Reply = tool_call_reply([])
        self.status = 200
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        # Computes the reply from the request instead of ``reply`` (when set).
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        # Statuses answered, one per request, before the normal reply (503s, 429s), with
        # ``retry_after`` as their Retry-After header when set.
        self.failures: list[int] = []
        self.retry_after: str | None = None
        self.models = ["fake"]
        self.in_flight = 0
        self.most_in_flight = 0
        self._count = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                data = [{"id": name, "object": "model", "owned_by": "test"} for name in fake.models]
                self._send(200, json.dumps({"object": "list", "data": data}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                request = json.loads(self.rfile.read(length))
                fake.requests.append(request)
                fake.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    self.send_response(404)
                    self.end_headers()
                    return
                with fake._count:
                    fake.in_flight += 1
                    fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
                    failure = fake.failures.pop(0) if fake.failures else None
                try:
                    self._answer(request, failure)
                finally:
                    with fake._count:
                        fake.in_flight -= 1

            def _answer(self, request: dict[str, Any], failure: int | None) -> None:
                time.sleep(fake.delay_s)
                if failure is not None:
                    headers = {"retry-after": fake.retry_after} if fake.retry_after else {}
                    message = {"error": {"message": "engine overloaded", "code": failure}}
                    self._send(failure, json.dumps(message).encode(), headers)
                    return
                reply = fake.responder(request) if fake.responder else fake.reply
                if request.get("stream") and fake.status == 200:
                    # A text reply is sent as it is, as one event (a malformed chunk).
                    events = stream_events(reply) if isinstance(reply, dict) else [reply, "[DONE]"]
                    self._stream(events)
                    return
                body = reply if isinstance(reply, str) else json.dumps(reply)
                self._send(fake.status, body.encode())

            def _send(
                self, status: int, data: bytes, headers: dict[str, str] | None = None
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting (the timeout test)

            def _stream(self, events: list[str]) -> None:
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("cache-control", "no-cache")
                    self.end_headers()  # no length: the stream ends when the connection closes
                    for event in events:
                        self.wfile.write(f"data: {event}\n\n".encode())
                        self.wfile.flush()
                    self.close_connection = True
                except OSError:
                    pass

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def decode_data_url(url: str) -> Image.Image:
    """The image of a ``data:image/...;base64,`` URL (the test engine's side of the wire)."""
    header, comma, payload = url.partition(",")
    if not comma or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ValueError("not a base64 image data URL")
    return Image.open(io.BytesIO(base64.b64decode(payload, validate=True))).convert("RGB")
