"""Requests signed as Slack signs them: ``v0=`` + HMAC-SHA256(secret, ``v0:{ts}:{body}``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "test-signing-secret"


def signed_headers(
    body: bytes, secret: str = SIGNING_SECRET, ts: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    base = b"v0:" + stamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def event_body(event: dict[str, Any], event_id: str, team: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": team,
            "api_app_id": "A0APP00001",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
    ).encode()
    return body, {"Content-Type": "application/json"}


def command_body(
    text: str,
    team: str,
    response_url: str,
    channel: str = "C0CHAN0001",
    user: str = "U0HUMAN001",
) -> tuple[bytes, dict[str, str]]:
    body = urlencode(
        {
            "command": "/mmrag",
            "text": text,
            "team_id": team,
            "channel_id": channel,
            "user_id": user,
            "api_app_id": "A0APP00001",
            "trigger_id": f"trigger-{time.monotonic_ns()}",
            "response_url": response_url,
        }
    ).encode()
    return body, {"Content-Type": "application/x-www-form-urlencoded"}


def action_body(
    action_id: str, value: str, team: str, channel: str, user: str, message_ts: str, url: str
) -> tuple[bytes, dict[str, str]]:
    """A button click (``block_actions``) as Slack posts it: a form with one JSON payload."""
    payload = {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": user},
        "channel": {"id": channel},
        "api_app_id": "A0APP00001",
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "response_url": url,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "message": {"type": "message", "ts": message_ts, "text": ""},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, {"Content-Type": "application/x-www-form-urlencoded"}
