"""What the task queue costs: an empty task through Redis and a Celery worker, against the
same call made directly in-process, in one run.

Three ways to run the empty task ``mmrag.ping``, each ``--calls`` times, one at a time:

1. ``direct``: the function called in this process (the floor);
2. ``in_process_thread_pool``: handed to a thread pool and awaited, as the embedded runner does;
3. ``celery``: ``send_task`` to a real ``mmrag worker`` subprocess over a real Redis on
   loopback, waiting for the result (the distributed mode's round trip).

    .venv/bin/python -m bench.queue_overhead [--calls 300]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import emit, percentiles_ms
from mmrag.config import Settings
from mmrag.testing.celery_worker import CeleryWorker, settings_env
from mmrag.testing.redis_server import RedisServer
from mmrag.workers.celery_app import PING_TASK, create_celery_app


def pong() -> str:
    return "pong"


def measure(call: Callable[[], Any], calls: int) -> dict[str, float]:
    for _ in range(min(20, calls)):  # warm-up: connections, thread start, imports
        call()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return {**percentiles_ms(samples), "calls_per_s": round(calls / sum(samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    results: dict[str, Any] = {"calls": args.calls}
    results["direct"] = measure(pong, args.calls)
    with ThreadPoolExecutor(4) as pool:
        results["in_process_thread_pool"] = measure(lambda: pool.submit(pong).result(), args.calls)

    with tempfile.TemporaryDirectory(prefix="mmrag-bench-") as scratch:
        root = Path(scratch)
        with RedisServer(root / "redis") as redis_server:
            settings = Settings(data_dir=root / "data", workers={"broker_url": redis_server.url})
            env = settings_env(
                {
                    "MMRAG_DATA_DIR": str(settings.data_dir),
                    "MMRAG_WORKERS__MODE": "celery",
                    "MMRAG_WORKERS__BROKER_URL": redis_server.url,
                }
            )
            app = create_celery_app(settings)
            with CeleryWorker(env, redis_server.url, root / "worker.log", concurrency=4):

                def round_trip() -> None:
                    sent = app.send_task(PING_TASK, queue="mmrag.vlm")
                    if sent.get(timeout=30) != "pong":
                        raise RuntimeError("the worker answered something else")

                results["celery"] = measure(round_trip, args.calls)
            app.close()

    celery_p50 = results["celery"]["p50_ms"]
    results["overhead_vs_direct_ms_p50"] = round(celery_p50 - results["direct"]["p50_ms"], 3)
    results["ratio_celery_to_in_process_thread_pool_p50"] = round(
        celery_p50 / results["in_process_thread_pool"]["p50_ms"], 1
    )
    emit("queue_overhead", results)


if __name__ == "__main__":
    main()
