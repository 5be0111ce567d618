"""Worker announcements in a real Redis: who is live, who ran out, who withdrew."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from mmrag.testing.redis_server import RedisServer
from mmrag.workers.heartbeat import Heartbeat, live_workers, workers_key


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis_server.client() as opened:
        yield opened


def wait_for(client: redis.Redis, names: list[str]) -> None:
    deadline = time.monotonic() + 10
    while live_workers(client, "vlm") != names:
        assert time.monotonic() < deadline, live_workers(client, "vlm")
        time.sleep(0.05)


def test_live_workers_are_those_whose_beat_has_not_run_out(client: redis.Redis) -> None:
    # Keys of other kinds (Celery results, the ledger) are not looked at.
    client.set("celery-task-meta-x", "{}")
    alive = Heartbeat(client, ["vlm", "grounding"], "alive", interval_s=60)
    killed = Heartbeat(client, ["vlm"], "killed", interval_s=0.05)
    alive.beat()
    killed.beat()  # and never again: runs out after three intervals
    time.sleep(0.3)
    assert live_workers(client, "vlm") == ["alive"]
    assert live_workers(client, "grounding") == ["alive"]
    alive.beat()
    assert client.zcard(workers_key("vlm")) == 1  # the run-out announcement was dropped
    alive.stop()  # never started: withdraws the announcements all the same
    assert live_workers(client, "vlm") == []
    assert live_workers(client, "grounding") == []


def test_a_beating_thread_survives_a_redis_restart(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    heartbeat = Heartbeat(client, ["vlm"], "w", interval_s=0.1)
    heartbeat.start()
    try:
        wait_for(client, ["w"])
        redis_server.stop()
        time.sleep(0.3)  # beats fail meanwhile
        redis_server.start()  # empty: the announcement is gone until the next beat
        wait_for(client, ["w"])
    finally:
        heartbeat.stop()
    assert live_workers(client, "vlm") == []
