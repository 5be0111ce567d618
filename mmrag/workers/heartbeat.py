"""Workers announce themselves in Redis, so the API can refuse at once when none listens.

Each queue has one sorted set of the hostnames of its workers, each scored with the time its
announcement runs out: three missed beats after the last one. Scores are the Redis server's
clock (``TIME``), so the workers' and the API's clocks need not agree. Looking up the live
workers is two round trips however many other keys the database holds (a ``SCAN`` for
per-worker keys would walk every Celery result and ledger entry as well), and far cheaper
than Celery's broadcast ``ping``, which waits out its whole timeout for replies.
"""

from __future__ import annotations

import logging
import threading
from typing import cast

import redis

from mmrag.workers.protocol import QueueName

log = logging.getLogger(__name__)

_PREFIX = "mmrag:workers:"


def workers_key(queue: QueueName) -> str:
    """The sorted set of the workers announced for ``queue``."""
    return f"{_PREFIX}{queue}"


def live_workers(client: redis.Redis, queue: QueueName) -> list[str]:
    """Hostnames of the workers that beat for ``queue`` recently, sorted."""
    now = _server_time(client)
    names = cast(list[bytes | str], client.zrangebyscore(workers_key(queue), now, "+inf"))
    return sorted(name.decode() if isinstance(name, bytes) else name for name in names)


def _server_time(client: redis.Redis) -> float:
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000


class Heartbeat:
    """A daemon thread that renews this worker's announcements every ``interval_s``."""

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
        """Stop beating and withdraw the announcements, so the API stops sending here at once."""
        self._stop.set()
        if self._thread.ident is not None:  # a worker stopped before it was ready never beat
            self._thread.join(timeout=self._interval_s + 1)
        try:
            with self._client.pipeline() as pipe:
                for queue in self._queues:
                    pipe.zrem(workers_key(queue), self._hostname)
                pipe.execute()
        except redis.RedisError:
            log.debug("could not withdraw the heartbeat", exc_info=True)

    def beat(self) -> None:
        now = _server_time(self._client)
        expires = now + self._interval_s * 3
        with self._client.pipeline() as pipe:
            for queue in self._queues:
                # Announcements that ran out (workers killed without a clean stop) go here,
                # so the set stays as small as the pool of live workers.
                pipe.zremrangebyscore(workers_key(queue), "-inf", now)
                pipe.zadd(workers_key(queue), {self._hostname: expires})
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
