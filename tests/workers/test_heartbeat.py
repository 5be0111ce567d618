"""Worker announcements in a real Redis: who is live, who ran out, who withdrew."""

from __future__ import annotations

import time

from mmrag.testing.redis_server import RedisServer
from mmrag.workers.heartbeat import Heartbeat, live_workers, workers_key


def test_live_workers_are_those_whose_beat_has_not_run_out(redis_server: RedisServer) -> None:
    client = redis_server.client()
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


def test_a_beating_thread_survives_a_redis_restart(redis_server: RedisServer) -> None:
    client = redis_server.client()
    heartbeat = Heartbeat(client, ["vlm"], "w", interval_s=0.1)
    heartbeat.start()
    try:
        deadline = time.monotonic() + 10
        while live_workers(client, "vlm") != ["w"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        redis_server.stop()
        time.sleep(0.3)  # beats fail meanwhile
        redis_server.start()  # empty: the announcement is gone until the next beat
        deadline = time.monotonic() + 10
        while live_workers(client, "vlm") != ["w"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        heartbeat.stop()
    assert live_workers(client, "vlm") == []
