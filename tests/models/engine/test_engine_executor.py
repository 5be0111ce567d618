"""An engine-served VLM behind the real task executor (the code path of both the embedded
runner and the Celery workers): results in order, the engine's failures as the items' error
envelopes, never a crashed task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents.fake_openai import FakeOpenAI, text_reply
from workers.test_executor import caption_task, executor_for, put_image

from mmrag.config import Settings
from mmrag.workers.executor import ToolExecutor
from mmrag.workers.protocol import ToolItem, ToolTask

MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"


@pytest.fixture
def engine() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.models = [MODEL]
        yield fake


@pytest.fixture
def executor(settings: Settings, engine: FakeOpenAI) -> Iterator[ToolExecutor]:
    created = executor_for(settings, f"openai:{engine.url}#{MODEL}")
    yield created
    created.close()


def test_captions_and_answers_through_the_executor(
    executor: ToolExecutor, engine: FakeOpenAI
) -> None:
    spec = f"openai:{engine.url}#{MODEL}"
    red = put_image(executor, (250, 0, 0), (40, 30))
    blue = put_image(executor, (0, 0, 250), (30, 40))
    engine.reply = text_reply("a plain colour.", 0.5)
    engine.failures = [503]
    engine.retry_after = "0"
    results = executor.run(caption_task(spec, red, "cd" * 32, blue))
    assert results[0] == {"caption": "a plain colour."}
    assert results[1]["error"]["type"] == "NotFound"
    assert results[2] == {"caption": "a plain colour."}
    asked = ToolTask(tool="vqa", model=spec, items=(ToolItem(sha256=red, question="colour?"),))
    [answer] = executor.run(asked)
    assert answer["answer"] == "a plain colour."
    assert answer["score"] == pytest.approx(0.5)
    # max_new_tokens is the settings' (executor_for sets 3).
    assert {request["max_tokens"] for request in engine.requests} == {3}


def test_engine_failures_become_error_envelopes(executor: ToolExecutor, engine: FakeOpenAI) -> None:
    spec = f"openai:{engine.url}#{MODEL}"
    red = put_image(executor, (250, 0, 0), (40, 30))
    engine.status = 400
    engine.reply = {"error": {"message": "prompt too long"}}
    [failed] = executor.run(caption_task(spec, red))
    assert failed["error"]["type"] == "ModelFailed"
    assert "prompt too long" in failed["error"]["detail"]
    engine.models = ["another/model"]
    fresh = executor_for(executor.settings, spec)
    try:
        [refused] = fresh.run(caption_task(spec, red))
    finally:
        fresh.close()
    assert refused["error"]["type"] == "ModelUnavailable"
    assert f"serves another/model, not {MODEL}" in refused["error"]["detail"]
