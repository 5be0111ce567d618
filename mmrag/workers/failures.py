"""Which failures of a task are worth a retry, and which are the input's own."""

from __future__ import annotations

import redis


def is_transient(error: BaseException) -> bool:
    """Failures a retry may cure: I/O on the shared volume, Redis, memory pressure.

    Anything else a model raises on an image is taken as deterministic: the same image would
    fail the same way on every retry.
    """
    if isinstance(error, OSError | TimeoutError | MemoryError | redis.RedisError):
        return True
    return "out of memory" in str(error).lower()
