"""Slack's Socket Mode end, played by a WebSocket server on loopback: it greets with
``hello``, sends envelopes, and collects the acknowledgements (one per envelope id)."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import Any

from websockets.sync.server import Server, ServerConnection, serve


class FakeSocketSlack:
    def __init__(self) -> None:
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self._connection: ServerConnection | None = None
        self._server: Server = serve(self._handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/link/?ticket=test"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, connection: ServerConnection) -> None:
        self._connection = connection
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}}
        connection.send(json.dumps(hello))
        self.connected.set()
        for message in connection:
            self.acks.put(json.loads(message))

    def send(self, kind: str, payload: dict[str, Any], accepts_response: bool = False) -> str:
        """One envelope (``events_api``, ``slash_commands``, ``interactive``); its id."""
        assert self._connection is not None, "no client connected"
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        self._connection.send(json.dumps(envelope))
        return envelope_id

    def ack_for(self, envelope_id: str, timeout: float = 30.0) -> dict[str, Any]:
        while True:
            ack = self.acks.get(timeout=timeout)
            if ack.get("envelope_id") == envelope_id:
                return ack

    def __enter__(self) -> FakeSocketSlack:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._thread.join(10)
