"""Workers announce themselves in Redis, so the API can refuse at once when none listens.

Each worker process keeps one key per queue it consumes, expiring after three missed beats.
Checking for a key is one Redis round trip, far cheaper than Celery's broadcast ``ping``,
which waits out its whole timeout for replies.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis

from mmrag.workers.protocol import QueueName

log = logging.getLogger(__name__)

_PREFIX = "mmrag:workers:"


def worker_key(queue: QueueName, hostname: str) -> str:
    return f"{_PREFIX}{queue}:{hostname}"


def live_workers(client: redis.Redis, queue: QueueName) -> list[str]:
    """Hostnames of the workers that beat for ``queue`` recently."""
    prefix = f"{_PREFIX}{queue}:"
    keys = client.scan_iter(match=f"{prefix}*", count=100)
    return [(key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :] for key in keys]


class Heartbeat:
    """A daemon thread that refreshes this worker's keys every ``interval_s``."""

    def __init__(
        self,
        client: redis.Redis,
        queues: list[QueueName],
        hostname: str,
        interval_s: float,
    ) -> None:
        self._client = client
        self._queues = queues
        self._hostname = hostname
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove the keys, so the API stops sending here at once."""
        self._stop.set()
        self._thread.join(timeout=self._interval_s + 1)
        try:
            self._client.delete(*(worker_key(q, self._hostname) for q in self._queues))
        except redis.RedisError:
            log.debug("could not remove heartbeat keys", exc_info=True)

    def beat(self) -> None:
        info = json.dumps({"hostname": self._hostname, "at": time.time()})
        ttl_ms = int(self._interval_s * 3 * 1000)
        with self._client.pipeline() as pipe:
            for queue in self._queues:
                pipe.set(worker_key(queue, self._hostname), info, px=ttl_ms)
            pipe.execute()

    def _run(self) -> None:
        while True:
            try:
                self.beat()
            except redis.RedisError as error:
                # Redis is down or restarting: keep trying, the beats resume with it.
                log.warning("heartbeat failed: %s", error)
            if self._stop.wait(self._interval_s):
                return
