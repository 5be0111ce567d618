"""The API under load, as tenants with keys see it: a real ``mmrag serve`` process on loopback.

Scenarios (one run does all three; sizes are options, the issue's sizes are the defaults):

1. ``search``: one client, then ``--clients`` (32) at once, each for ``--seconds`` (60), on
   ``/v1/search``; errors, p50/p99 and requests/s, and the ratio of the concurrent p50 to the
   single client's (the baseline of the same run).
2. ``mixed``: ``--uploaders`` (8) uploading unique images while ``--searchers`` (16) search,
   for ``--seconds``; errors, and whether every upload is listed exactly once and readable.
3. ``memory``: ``--searches`` (10,000) searches by ``--clients`` clients; the server's RSS
   every tenth of them, and its growth after the first tenth (the warm-up).

Two tenants hold images; the load runs as one of them (a key of the key store), so every
search goes through its tenant filter. Rates are set out of the way.

    .venv/bin/python -m bench.tenant_load                                  # the issue's sizes
    .venv/bin/python -m bench.tenant_load --seconds 5 --clients 8 --uploaders 2 \\
        --searchers 4 --searches 1000                                      # a quick look
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.common import emit, percentiles_ms
from mmrag.tenancy.keys import KeyStore, parse_scopes

WORDS = ("red", "green", "blue", "yellow", "circle", "square", "triangle", "small", "large")


def _png(seed: int, size: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    def __init__(self, data_dir: Path, embedder: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
        env.update(
            MMRAG_DATA_DIR=str(data_dir),
            MMRAG_MODELS__EMBEDDER=embedder,
            MMRAG_MODELS__DEVICE="cpu",
            MMRAG_SAMPLES__ENABLED="false",
            MMRAG_LOG_LEVEL="WARNING",
            MMRAG_TENANCY__SEARCH_PER_S="100000",
            MMRAG_TENANCY__ASK_PER_S="10000",
        )
        if "MMRAG_FIXTURE_CACHE" in os.environ:
            env["MMRAG_FIXTURE_CACHE"] = os.environ["MMRAG_FIXTURE_CACHE"]
        command = [sys.executable, "-m", "mmrag.cli", "serve", "--port", str(self.port)]
        self.log = (data_dir.parent / "api.log").open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not start: see api.log")
            time.sleep(0.2)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _search(client: httpx.Client, rng: np.random.Generator) -> httpx.Response:
    text = " ".join(rng.choice(WORDS, size=2))
    return client.post("/v1/search", json={"text": text, "limit": 10})


def _run_threads(count: int, work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def searchers(
    server: Server, secret: str, clients: int, seconds: float, stop: threading.Event | None = None
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(index: int) -> None:
        rng = np.random.default_rng(index)
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                started = time.perf_counter()
                try:
                    response = _search(client, rng)
                    outcome = None if response.status_code == 200 else str(response.status_code)
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    if outcome is not None:
                        errors[outcome] += 1

    started = time.perf_counter()
    _run_threads(clients, work)
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": dict(errors),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        **percentiles_ms(latencies or [0.0]),
    }


def mixed(
    server: Server, secret: str, uploaders: int, searchers_n: int, seconds: float
) -> dict[str, Any]:
    uploaded: list[str] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {secret}"}

    def upload(index: int) -> None:
        serial = 0
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            while time.monotonic() < deadline:
                data = _png(1_000_000 + index * 100_000 + serial)
                serial += 1
                try:
                    response = client.post(
                        "/v1/images", files=[("files", ("u.png", data, "image/png"))]
                    )
                except httpx.HTTPError as error:
                    with lock:
                        errors[type(error).__name__] += 1
                    continue
                with lock:
                    if response.status_code == 201:
                        uploaded.append(response.json()["items"][0]["id"])
                    else:
                        errors[str(response.status_code)] += 1

    search_result: dict[str, Any] = {}

    def search_side() -> None:
        search_result.update(searchers(server, secret, searchers_n, seconds, stop))

    side = threading.Thread(target=search_side)
    side.start()
    _run_threads(uploaders, upload)
    stop.set()
    side.join()
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        listed: Counter[str] = Counter()
        offset = 0
        while True:
            page = client.get("/v1/images", params={"limit": 200, "offset": offset}).json()
            listed.update(item["id"] for item in page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
        unreadable = sum(
            1
            for image_id in uploaded
            if client.get(f"/v1/images/{image_id}/thumbnail").status_code != 200
        )
    return {
        "uploaders": uploaders,
        "uploads": len(uploaded),
        "upload_errors": dict(errors),
        "uploads_listed_exactly_once": all(listed[image_id] == 1 for image_id in uploaded),
        "uploads_unreadable": unreadable,
        "search": search_result,
    }


def memory(server: Server, secret: str, clients: int, searches: int) -> dict[str, Any]:
    step = max(1, searches // 10)
    samples = [round(server.rss_mb(), 1)]
    done = 0
    headers = {"Authorization": f"Bearer {secret}"}
    errors = 0
    while done < searches:
        share = -(-step // clients)

        def work(index: int, share: int = share, seed: int = done) -> None:
            nonlocal errors
            rng = np.random.default_rng(seed + index)
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                for _ in range(share):
                    if _search(client, rng).status_code != 200:
                        errors += 1

        _run_threads(clients, work)
        done += share * clients
        samples.append(round(server.rss_mb(), 1))
    warm = samples[1]
    return {
        "searches": done,
        "errors": errors,
        "rss_mb": samples,
        "growth_after_warmup_ratio": round(samples[-1] / warm, 3) if warm else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--uploaders", type=int, default=8)
    parser.add_argument("--searchers", type=int, default=16)
    parser.add_argument("--searches", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=200, help="images per tenant to start")
    parser.add_argument("--embedder", default="fixture:shapes-clip")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mmrag-bench-") as root:
        data_dir = Path(root) / "data"
        keys = KeyStore.in_data_dir(data_dir)
        secrets = {
            tenant: keys.create(tenant, parse_scopes("read,write"), tenant)[1]
            for tenant in ("bench", "neighbour")
        }
        keys.close()
        server = Server(data_dir, args.embedder)
        try:
            for number, secret in enumerate(secrets.values()):
                headers = {"Authorization": f"Bearer {secret}"}
                with httpx.Client(base_url=server.url, headers=headers, timeout=300) as client:
                    for start in range(0, args.images, 32):
                        batch = range(start, min(args.images, start + 32))
                        files = [
                            ("files", (f"{i}.png", _png(number * 100_000 + i), "image/png"))
                            for i in batch
                        ]
                        client.post("/v1/images", files=files).raise_for_status()
            secret = secrets["bench"]
            single = searchers(server, secret, 1, max(2.0, args.seconds / 4))
            many = searchers(server, secret, args.clients, args.seconds)
            load = mixed(server, secret, args.uploaders, args.searchers, args.seconds)
            held = memory(server, secret, args.clients, args.searches)
        finally:
            server.stop()
    emit(
        "tenant_load",
        {
            "embedder": args.embedder,
            "images_per_tenant": args.images,
            "seconds": args.seconds,
            "search": {
                "baseline_one_client": single,
                "concurrent": many,
                "p50_ratio_vs_one_client": round(many["p50_ms"] / single["p50_ms"], 2),
            },
            "mixed": load,
            "memory": held,
        },
    )


if __name__ == "__main__":
    main()
