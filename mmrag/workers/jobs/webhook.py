"""A signed webhook when a job ends (completed or cancelled).

The body is the job's status as JSON. ``X-Mmrag-Timestamp`` carries the send time and
``X-Mmrag-Signature`` is ``v1=`` + HMAC-SHA256 of ``{timestamp}.{body}`` with the webhook
key (``MMRAG_JOBS__WEBHOOK_SECRET``, or unset: the hex HMAC-SHA256 of
``mmrag job webhooks`` under ``secret_key``), so a receiver can check where it came from and
refuse replays, and cannot forge the service's other tokens. URLs (hooks often carry a
token in their path) are never shown or logged past their host. It is sent
with the URL fetcher's address checks (no private addresses, no redirects), retried a few
times with backoff on failures a retry may cure, in a thread of its own: a slow receiver
never holds up the driver. A failed delivery is logged; the job is not affected.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from mmrag.config import Settings
from mmrag.errors import MmragError, SourceUnreachable
from mmrag.retrieval.sources import UrlFetcher

log = logging.getLogger(__name__)

ATTEMPTS = 3


def webhook_secret(settings: Settings) -> str:
    """The key webhooks are signed with: their own, or one derived from ``secret_key``."""
    if settings.jobs.webhook_secret is not None:
        return settings.jobs.webhook_secret.get_secret_value()
    master = settings.secret_key.get_secret_value().encode()
    return hmac.new(master, b"mmrag job webhooks", hashlib.sha256).hexdigest()


def redact(url: str) -> str:
    """The URL with only its scheme and host: what may be shown to readers and logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(
        self, secret: str, fetcher: Callable[[], UrlFetcher], backoff_s: float = 1.0
    ) -> None:
        self._secret = secret
        self._fetcher = fetcher
        self._backoff_s = backoff_s

    def send_later(self, url: str, body: bytes) -> threading.Thread:
        thread = threading.Thread(target=self.send, args=(url, body), name="job-webhook")
        thread.daemon = True
        thread.start()
        return thread

    def send(self, url: str, body: bytes) -> bool:
        """Deliver ``body``; whether a 2xx answer came back."""
        for attempt in range(1, ATTEMPTS + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Mmrag-Timestamp": timestamp,
                "X-Mmrag-Signature": signature(self._secret, timestamp, body),
            }
            try:
                with self._fetcher() as fetcher:
                    status = fetcher.post(url, body, headers)
            except SourceUnreachable as error:
                log.warning("webhook %s: %s (attempt %d)", redact(url), error.detail, attempt)
            except MmragError as error:  # refused (a private address ...): retrying cannot help
                log.warning("webhook %s refused: %s", redact(url), error.detail)
                return False
            else:
                if 200 <= status < 300:
                    return True
                log.warning("webhook %s answered %d (attempt %d)", redact(url), status, attempt)
                if status < 500:
                    return False
            if attempt < ATTEMPTS:
                time.sleep(self._backoff_s * 2 ** (attempt - 1))
        return False
