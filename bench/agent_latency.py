"""Agent latency: local plan latency over the routing set, and ``POST /v1/ask`` end to end
for a single-tool and a two-step question with the fixture models.

- plan: every routing-set question through the local planner (after one warm-up call that
  trains it), ``repeats`` times.
- ask: an app on a fresh data dir with the offline fixture models (shapes-clip retrieval,
  shapes-grounding boxes) and ``scenes`` indexed shapes scenes, called in-process over ASGI
  (FastAPI's TestClient): "where is the blue triangle?" about a given image (ground) and the
  same question about the collection (retrieve + ground over 5 hits).
- adaptive vs fixed: the same questions about the collection through ``/v1/ask`` with
  ``agent.adaptive`` on and off, one app after the other on the same store; the ratio is the
  adaptive loop's p50 over the fixed plan's (it may run more steps: a ranked count searches
  wider and grounds its top image).

    .venv/bin/python -m bench.agent_latency            # 200 asks each
    .venv/bin/python -m bench.agent_latency --quick    # 30 asks each
    .venv/bin/python -m bench.agent_latency --quick --compare-asks 5   # small, for a shared CPU
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.common import emit, percentiles_ms
from mmrag.agents.evaluate import request_for
from mmrag.agents.planner import LocalPlanner
from mmrag.agents.routing_set import routing_set
from mmrag.api.app import create_app
from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, generate_scene

log = logging.getLogger("bench.agent_latency")
QUESTION = "where is the blue triangle?"


def plan_latency(repeats: int) -> dict[str, Any]:
    planner = LocalPlanner()
    examples = routing_set()
    planner.plan(request_for(examples[0]))
    samples = []
    for _ in range(repeats):
        for example in examples:
            started = time.perf_counter()
            planner.plan(request_for(example))
            samples.append(time.perf_counter() - started)
    return {"questions": len(samples), **percentiles_ms(samples)}


def ask_latency(asks: int, scenes: int, data_dir: Path) -> dict[str, Any]:
    settings = Settings(
        data_dir=data_dir,
        profile="offline",
        models={"device": "cpu", "cache_dir": default_cache_dir()},
        samples={"enabled": False},
    )
    with TestClient(create_app(settings)) as client:
        image_id = _index(client, scenes)
        results = {}
        bodies = {
            "single_tool_ground": {"question": QUESTION, "image_id": image_id},
            "two_step_retrieve_ground": {"question": QUESTION},
        }
        for name, body in bodies.items():
            client.post("/v1/ask", json=body).raise_for_status()  # warm-up: loads models
            samples = []
            for _ in range(asks):
                started = time.perf_counter()
                answer = client.post("/v1/ask", json=body)
                samples.append(time.perf_counter() - started)
                answer.raise_for_status()
            plan = [step["tool"] for step in answer.json()["plan"]["steps"]]
            results[name] = {"plan": plan, "asks": asks, **percentiles_ms(samples)}
        return results


COMPARED = (
    QUESTION,
    "which of my photos has the most triangles?",
    "find images with a red circle and tell me what colour the square is",
)


def _index(client: TestClient, scenes: int) -> str:
    files = []
    for seed in range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + scenes):
        out = io.BytesIO()
        generate_scene(seed).image.save(out, "PNG")
        files.append(("files", (f"{seed}.png", out.getvalue(), "image/png")))
    response = client.post("/v1/images", files=files)
    response.raise_for_status()
    return str(response.json()["items"][0]["id"])


def adaptive_vs_fixed(asks: int, scenes: int, data_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in ("fixed", "adaptive"):
        settings = Settings(
            data_dir=data_dir,
            profile="offline",
            models={"device": "cpu", "cache_dir": default_cache_dir()},
            samples={"enabled": False},
            agent={"adaptive": mode == "adaptive"},
        )
        with TestClient(create_app(settings)) as client:
            _index(client, scenes)  # the second app finds them indexed already
            per_question = {}
            for question in COMPARED:
                body = {"question": question}
                client.post("/v1/ask", json=body).raise_for_status()  # warm-up
                samples = []
                for _ in range(asks):
                    started = time.perf_counter()
                    answer = client.post("/v1/ask", json=body)
                    samples.append(time.perf_counter() - started)
                    answer.raise_for_status()
                steps = [entry["tool"] for entry in answer.json()["trace"]]
                per_question[question] = {"ran": steps, **percentiles_ms(samples)}
            results[mode] = per_question
    results["p50_ratio_adaptive_over_fixed"] = {
        question: round(
            results["adaptive"][question]["p50_ms"] / results["fixed"][question]["p50_ms"], 3
        )
        for question in COMPARED
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--compare-asks", type=int, default=None, help="asks per question and agent (adaptive)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asks = 30 if args.quick else 200
    with tempfile.TemporaryDirectory() as scratch:
        emit(
            "agent_latency",
            {
                "plan_local": plan_latency(2 if args.quick else 10),
                "ask": ask_latency(asks, 24, Path(scratch) / "data"),
                "adaptive_vs_fixed": adaptive_vs_fixed(
                    args.compare_asks or asks, 24, Path(scratch) / "compare"
                ),
            },
        )


if __name__ == "__main__":
    main()
