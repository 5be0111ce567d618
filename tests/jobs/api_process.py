"""``mmrag serve`` as a real subprocess, so a test can SIGKILL the API and start it again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from api.live_server import free_port

from mmrag.testing.celery_worker import settings_env


class ApiProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = settings_env(env)
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90) -> None:
        command = [sys.executable, "-m", "mmrag.cli", "serve", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start; log:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown runs, nothing is flushed or saved on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
