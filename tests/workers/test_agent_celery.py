"""The agent in the distributed mode: the same graph, its tools run by a real ``mmrag worker``
over a real Redis (tiny random models: structure, not answers)."""

from __future__ import annotations

import pytest
from workers.shapes_scenes import held_out, index_scenes

from mmrag.config import Settings
from mmrag.services import Services
from mmrag.testing.celery_worker import CeleryWorker

pytestmark = pytest.mark.slow


def test_the_agent_runs_its_tools_on_a_celery_worker(
    celery_settings: Settings, celery_worker: CeleryWorker
) -> None:
    services = Services.open(celery_settings)
    try:
        [image_id] = index_scenes(services, held_out(1))
        caption = services.agent().ask("describe this photo", image_id=image_id)
        grounded = services.agent().ask("where is the red circle?", image_id=image_id)
    finally:
        services.close()
    [step] = caption.trace
    assert step["tool"] == "caption"
    assert isinstance(step["outputs"][0]["caption"], str)
    assert caption.citations[0]["image_id"] == image_id
    [ground] = grounded.trace
    assert ground["tool"] == "ground"
    # The worker answered (a failed call would carry "error" and no boxes); a tiny random
    # model may find nothing, but whatever it boxes lies inside the 64-pixel scene.
    assert "error" not in ground
    assert "error" not in ground["outputs"][0]
    for box in ground["outputs"][0]["boxes"]:
        x1, y1, x2, y2 = box["box"]
        assert 0 <= x1 <= x2 <= 64
        assert 0 <= y1 <= y2 <= 64


def test_with_no_worker_the_answer_says_the_tool_is_unavailable(
    celery_settings: Settings,
) -> None:
    services = Services.open(celery_settings)
    try:
        [image_id] = index_scenes(services, held_out(1))
        result = services.agent().ask("describe this photo", image_id=image_id)
    finally:
        services.close()
    assert result.weak_evidence
    assert result.answer.startswith("I ran 0 of 1 steps (caption failed:")
    assert "error" in result.trace[0]
