"""Captions per second through the engine adapter, one request in flight against several.

The engine is a loopback OpenAI-protocol server that answers each request after a fixed
service time, on its own thread, as an engine with spare batch capacity does (vLLM's continuous
batching): what this measures is the adapter's side, the overlap of requests and the cost of
resizing, PNG-encoding and sending each image. The baseline is ``max_in_flight=1`` in the same
run. ``--service-ms 0`` leaves the adapter's own cost per image.

    .venv/bin/python -m bench.engine_in_flight --images 64 --service-ms 50 --in-flight 8
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from bench.common import emit
from mmrag.config import EngineSettings
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import VisionOptions
from mmrag.workers.executor import engine_options

MODEL = "bench/vlm"


def _server(service_s: float) -> ThreadingHTTPServer:
    reply = json.dumps(
        {
            "id": "bench",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "a photo."}}],
        }
    ).encode()
    models = json.dumps({"object": "list", "data": [{"id": MODEL}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as engines serve
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and the
        # client's delayed ACK would add 40 ms to every answer.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._send(models)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            time.sleep(service_s)
            self._send(reply)

        def _send(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _rate(url: str, images: list[Image.Image], in_flight: int) -> float:
    options = VisionOptions(engine=engine_options(EngineSettings(max_in_flight=in_flight)))
    model = create_vision_model(f"openai:{url}#{MODEL}", options)
    model.load()
    try:
        started = time.perf_counter()
        model.caption(images)
        return len(images) / (time.perf_counter() - started)
    finally:
        model.unload()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=640, help="image side in pixels")
    parser.add_argument("--service-ms", type=float, default=50.0)
    parser.add_argument("--in-flight", type=int, default=8)
    arguments = parser.parse_args()
    server = _server(arguments.service_ms / 1000)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    images = [
        Image.effect_noise((arguments.size, arguments.size), 40).convert("RGB")
        for _ in range(arguments.images)
    ]
    try:
        baseline = _rate(url, images, 1)
        concurrent = _rate(url, images, arguments.in_flight)
    finally:
        server.shutdown()
    emit(
        "engine_in_flight",
        {
            "images": arguments.images,
            "image_px": arguments.size,
            "service_ms": arguments.service_ms,
            "in_flight": arguments.in_flight,
            "captions_per_s": {
                "in_flight_1": round(baseline, 1),
                "concurrent": round(concurrent, 1),
            },
            "ratio": round(concurrent / baseline, 2),
        },
    )


if __name__ == "__main__":
    main()
