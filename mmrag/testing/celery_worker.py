"""A real ``mmrag worker`` subprocess (Celery, threads pool) for the distributed-mode tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import redis

from mmrag.workers.heartbeat import live_workers
from mmrag.workers.protocol import QueueName


def settings_env(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment minus its MMRAG_ settings, plus ``overrides``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MMRAG_") or name == "MMRAG_FIXTURE_CACHE"
    }
    env.update(overrides)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class CeleryWorker:
    """Starts ``mmrag worker``; ready once its heartbeat shows in Redis."""

    def __init__(
        self,
        env: dict[str, str],
        broker_url: str,
        log_path: Path,
        queues: tuple[QueueName, ...] = ("vlm", "grounding"),
        hostname: str = "test-worker",
        concurrency: int = 8,
        preload: bool = False,
    ) -> None:
        self.env = env
        self.broker_url = broker_url
        self.log_path = log_path
        self.queues = queues
        self.hostname = hostname
        self.concurrency = concurrency
        self.preload = preload
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> None:
        command = [
            sys.executable, "-m", "mmrag.cli", "worker",
            "--queues", ",".join(self.queues),
            "--hostname", self.hostname,
            "--concurrency", str(self.concurrency),
        ]  # fmt: skip
        if self.preload:
            command.append("--preload")
        # The child writes to its own copy of the descriptor; ours is closed at once.
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        client = redis.Redis.from_url(self.broker_url, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while self.hostname not in live_workers(client, self.queues[0]):
                if self.process.poll() is not None:
                    raise RuntimeError(f"worker exited early; log:\n{self.log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker not ready in {timeout_s} s; log:\n{self.log()}")
                time.sleep(0.1)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no clean-up runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> CeleryWorker:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
