"""``mmrag eval answers``: the agent's final answers on the answer set (agents/answer_set.py),
asked through the service function ``/v1/ask`` calls, by the fixed-plan agent and the
adaptive one over the same store in the same run.

The world is built for the run: the scenes indexed into a temporary data dir with the
trained fixture models (shapes-clip, shapes-grounding, shapes-vlm), never the user's store.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.agents.agent import Agent
from mmrag.agents.answer_set import AnswerQuestion, judge, questions, scenes
from mmrag.agents.planner import LocalPlanner
from mmrag.config import AgentSettings, Settings
from mmrag.models.fixtures import default_cache_dir
from mmrag.models.fixtures.shapes import ShapeScene
from mmrag.retrieval.items import IngestItem
from mmrag.services import Services

MODES = ("fixed", "adaptive")


def world_settings(data_dir: Path, agent: AgentSettings) -> Settings:
    return Settings(
        data_dir=data_dir,
        models={
            "embedder": "fixture:shapes-clip",
            "grounding": "fixture:shapes-grounding",
            "vlm": "fixture:shapes-vlm",
            "device": "cpu",
            "cache_dir": default_cache_dir(),
        },
        samples={"enabled": False},
        agent=agent,
    )


def index(services: Services, world: list[ShapeScene]) -> list[str]:
    items = []
    for scene in world:
        out = io.BytesIO()
        scene.image.save(out, "PNG")
        items.append(IngestItem.upload(out.getvalue(), f"scene-{scene.seed}.png"))
    report = services.ingest(items)
    ids = [r.image.image_id for r in report.results if r.image is not None]
    if len(ids) != len(world):
        raise RuntimeError(f"indexed {len(ids)} of {len(world)} scenes")
    return ids


def _score(
    agent: Agent, items: list[AnswerQuestion], world: list[ShapeScene], ids: list[str]
) -> dict[str, Any]:
    right = Counter[str]()
    cited = Counter[str]()
    asked = Counter[str]()
    latencies: list[float] = []
    misses: list[dict[str, Any]] = []
    for item in items:
        image = ids[item.image] if item.image is not None else None
        started = time.perf_counter()
        result = agent.ask(item.question, image_id=image).model_dump()
        latencies.append((time.perf_counter() - started) * 1000)
        verdict = judge(item, result, world, ids)
        asked[item.kind] += 1
        right[item.kind] += verdict.answer
        cited[item.kind] += verdict.citations
        if not verdict.answer:
            misses.append({"id": item.id, "question": item.question, "answer": result["answer"]})
    total = len(items)
    return {
        "total": total,
        "answers_right": sum(right.values()),
        "answer_accuracy": round(sum(right.values()) / total, 4) if total else 0.0,
        "citations_right": sum(cited.values()),
        "citation_accuracy": round(sum(cited.values()) / total, 4) if total else 0.0,
        "by_kind": {k: f"{right[k]}/{asked[k]}" for k in sorted(asked)},
        "ask_ms_p50": round(float(np.percentile(latencies or [0.0], 50)), 1),
        "misses": misses,
    }


def evaluate_answers(agent_settings: AgentSettings, scene_count: int) -> dict[str, Any]:
    """Both agents' scores on the answer set of ``scene_count`` scenes."""
    world = scenes(scene_count)
    items = questions(world)
    with tempfile.TemporaryDirectory(prefix="mmrag-answers-") as tmp:
        services = Services.open(world_settings(Path(tmp) / "data", agent_settings))
        try:
            ids = index(services, world)
            report: dict[str, Any] = {"scenes": scene_count, "questions": len(items)}
            for mode in MODES:
                settings = agent_settings.model_copy(update={"adaptive": mode == "adaptive"})
                with closing(Agent(services, LocalPlanner(), settings)) as agent:
                    report[mode] = _score(agent, items, world, ids)
            return report
        finally:
            services.close()
