"""Per-key rates (token buckets) and the arithmetic of daily counts and quotas.

Rates are kept in this process: with several API processes a key may go as fast as the rate
times the processes (each refuses on its own). Daily image counts live in the key store and
are shared by every process.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mmrag.errors import RateLimited

# Buckets of keys not seen for a while are dropped, oldest first, past this many.
MAX_BUCKETS = 10_000


class RateLimiter:
    """One token bucket per (caller, kind): ``rate`` tokens a second, holding at most one
    second's worth (and at least one token)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, caller: str, kind: str, rate: float) -> None:
        """One token, or RateLimited with the seconds until one is there."""
        capacity = max(1.0, rate)
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop((caller, kind), (capacity, now))
            tokens = min(capacity, tokens + (now - then) * rate)
            if tokens < 1.0:
                self._buckets[(caller, kind)] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise RateLimited(
                    f"over {rate:g} {kind} requests a second for this key", max(1, wait)
                )
            self._buckets[(caller, kind)] = (tokens - 1.0, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)


def utc_day(now: datetime) -> str:
    return now.strftime("%Y-%m-%d")


def seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


def now_utc() -> datetime:
    return datetime.now(UTC)
