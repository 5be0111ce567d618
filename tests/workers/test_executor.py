"""The task functions on a tiny random VLM: envelopes, order, micro-batching, time limits.

Structure only (the tiny model's words are noise); answers are asserted with the fixture
models in ``test_tools.py``.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from models.vlm.tiny_vlms import build_tiny_vlm
from PIL import Image

from mmrag.config import Settings
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import CaptionDetail, VisionModel, VisionOptions
from mmrag.retrieval.blobs import FilesystemBlobStore
from mmrag.workers.executor import ToolExecutor, VisionFactory
from mmrag.workers.protocol import ToolItem, ToolTask
from mmrag.workers.runner import InProcessRunner


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"local:{build_tiny_vlm('llava-plain', tmp_path_factory.mktemp('llava'))}"


def executor_for(
    settings: Settings, spec: str, allowed: list[str] | None = None, **workers: Any
) -> ToolExecutor:
    data = settings.model_dump()
    data["models"].update(vlm=spec, device="cpu", cpu_threads=1, allowed=allowed or [])
    data["models"]["max_new_tokens"] = 3
    data["workers"].update(workers)
    configured = Settings.model_validate(data)
    return ToolExecutor(configured, FilesystemBlobStore(settings.data_dir / "blobs"))


@pytest.fixture
def executor(settings: Settings, tiny_llava: str) -> Iterator[ToolExecutor]:
    created = executor_for(settings, tiny_llava, batch_window_ms=50)
    yield created
    created.close()


def put_image(executor: ToolExecutor, colour: tuple[int, int, int], size: tuple[int, int]) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    data = out.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    executor.blobs.put("original", sha, data)
    return sha


def put_bytes(executor: ToolExecutor, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    executor.blobs.put("original", sha, data)
    return sha


def caption_task(spec: str, *shas: str) -> ToolTask:
    return ToolTask(tool="caption", model=spec, items=tuple(ToolItem(sha256=s) for s in shas))


def test_results_keep_order_and_bad_items_get_envelopes(
    executor: ToolExecutor, tiny_llava: str
) -> None:
    good = put_image(executor, (255, 0, 0), (40, 30))
    corrupt = put_bytes(executor, b"\x89PNG\r\n\x1a\nnot really")
    missing = "cd" * 32
    other = put_image(executor, (0, 0, 255), (20, 50))
    results = executor.run(caption_task(tiny_llava, good, corrupt, missing, other))
    assert isinstance(results[0]["caption"], str)
    assert results[1]["error"]["type"] == "UnsupportedMedia"
    assert results[2]["error"]["type"] == "NotFound"
    assert isinstance(results[3]["caption"], str)


def test_an_unserved_tool_is_refused_before_the_model_loads(
    executor: ToolExecutor, tiny_llava: str
) -> None:
    sha = put_image(executor, (0, 255, 0), (32, 32))
    task = ToolTask(tool="ground", model=tiny_llava, items=(ToolItem(sha256=sha, phrases=("x",)),))
    [result] = executor.run(task)
    assert result["error"]["type"] == "InvalidInput"
    assert "does not serve ground" in result["error"]["detail"]
    assert not executor.adapter(tiny_llava).loaded


def test_a_question_is_required_for_vqa(executor: ToolExecutor, tiny_llava: str) -> None:
    sha = put_image(executor, (0, 255, 0), (32, 32))
    asked = ToolItem(sha256=sha, question="what colour is it?")
    task = ToolTask(tool="vqa", model=tiny_llava, items=(ToolItem(sha256=sha), asked))
    blank, answered = executor.run(task)
    assert blank["error"]["detail"] == "vqa needs a question"
    assert isinstance(answered["answer"], str)
    assert answered["score"] is None or 0.0 <= answered["score"] <= 1.0


def test_a_model_not_served_here_is_refused_without_loading(executor: ToolExecutor) -> None:
    sha = put_image(executor, (0, 255, 0), (32, 32))
    [result] = executor.run(caption_task("local:/etc", sha))
    assert result["error"]["type"] == "UnknownModel"
    assert "local:/etc" not in executor.models.loaded_keys()


def test_an_allowed_model_that_cannot_load_is_unavailable(
    settings: Settings, tiny_llava: str
) -> None:
    missing = executor_for(settings, tiny_llava, allowed=["local:/no/such/model"])
    try:
        sha = put_image(missing, (0, 255, 0), (32, 32))
        [result] = missing.run(caption_task("local:/no/such/model", sha))
        assert result["error"]["type"] == "ModelUnavailable"
    finally:
        missing.close()


def test_concurrent_tasks_share_forward_passes(executor: ToolExecutor, tiny_llava: str) -> None:
    shas = [put_image(executor, (i * 30, 0, 0), (32, 32)) for i in range(8)]
    executor.run(caption_task(tiny_llava, shas[0]))  # load the model first
    before = _batches_run(executor)
    results: list[list[dict[str, Any]]] = []
    threads = [
        threading.Thread(
            target=lambda s=sha: results.append(executor.run(caption_task(tiny_llava, s)))
        )
        for sha in shas
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all("caption" in result[0] for result in results)
    assert _batches_run(executor) - before < 8  # eight requests, fewer forward passes


POISON = (13, 13, 13)


def failing_on_poison(error: Exception, calls: list[int]) -> VisionFactory:
    """The real tiny model, made to raise ``error`` on any batch holding a poison-grey image:
    a model that cannot take one particular image. ``calls`` records each batch's size."""

    def factory(spec: str, options: VisionOptions) -> VisionModel:
        model = create_vision_model(spec, options)
        caption = model.caption

        def poisoned(images: Sequence[Image.Image], detail: CaptionDetail = "short") -> list[str]:
            calls.append(len(images))
            if any(image.getpixel((0, 0)) == POISON for image in images):
                raise error
            return caption(images, detail)

        setattr(model, "caption", poisoned)  # noqa: B010 - an instance attribute on purpose
        return model

    return factory


def poisoned_executor(
    settings: Settings, tiny_llava: str, error: Exception, calls: list[int]
) -> ToolExecutor:
    configured = executor_for(settings, tiny_llava, batch_window_ms=500, batch_max=8).settings
    blobs = FilesystemBlobStore(settings.data_dir / "blobs")
    return ToolExecutor(configured, blobs, failing_on_poison(error, calls))


def test_an_image_the_model_fails_on_fails_alone(settings: Settings, tiny_llava: str) -> None:
    calls: list[int] = []
    executor = poisoned_executor(settings, tiny_llava, ValueError("bad tensor"), calls)
    try:
        shas = [
            put_image(executor, colour, (32, 32)) for colour in [(200, 0, 0), POISON, (0, 0, 200)]
        ]
        results = executor.run(caption_task(tiny_llava, *shas))
        assert isinstance(results[0]["caption"], str)
        assert results[1]["error"]["type"] == "ModelFailed"
        assert "bad tensor" in results[1]["error"]["detail"]
        assert isinstance(results[2]["caption"], str)
        # One pass for the three, which failed, then one pass for each on its own.
        assert calls == [3, 1, 1, 1]
    finally:
        executor.close()


def test_a_transient_failure_fails_the_task_for_a_retry(
    settings: Settings, tiny_llava: str
) -> None:
    calls: list[int] = []
    executor = poisoned_executor(settings, tiny_llava, MemoryError("out of memory"), calls)
    try:
        shas = [put_image(executor, colour, (32, 32)) for colour in [(200, 0, 0), POISON]]
        with pytest.raises(MemoryError):
            executor.run(caption_task(tiny_llava, *shas))
        assert calls == [2]  # no item-by-item rerun: the whole task is retried
    finally:
        executor.close()


def test_items_past_the_time_limit_are_unavailable(settings: Settings, tiny_llava: str) -> None:
    slow_window = executor_for(settings, tiny_llava, batch_window_ms=1000, batch_max=64)
    try:
        sha = put_image(slow_window, (9, 9, 9), (32, 32))
        [result] = slow_window.run(caption_task(tiny_llava, sha), timeout_s=0.05)
        assert result["error"]["type"] == "Unavailable"
        assert "time limit" in result["error"]["detail"]
    finally:
        slow_window.close()


def test_in_process_runner_runs_the_same_executor(executor: ToolExecutor, tiny_llava: str) -> None:
    sha = put_image(executor, (1, 2, 3), (32, 32))
    runner = InProcessRunner(executor, concurrency=2)
    [result] = runner.run(caption_task(tiny_llava, sha), timeout_s=60)
    assert isinstance(result["caption"], str)
    assert runner.readiness("caption") == "ok"


def test_idle_models_are_unloaded_by_the_sweep(settings: Settings, tiny_llava: str) -> None:
    idle = executor_for(settings, tiny_llava, idle_unload_s=0.01)
    try:
        sha = put_image(idle, (5, 5, 5), (32, 32))
        idle.run(caption_task(tiny_llava, sha))
        assert idle.adapter(tiny_llava).loaded
        threading.Event().wait(0.05)
        assert idle.models.sweep() == [tiny_llava]
        assert not idle.adapter(tiny_llava).loaded
    finally:
        idle.close()


def _batches_run(executor: ToolExecutor) -> int:
    return executor.batchers.batches_run()


def test_an_unreadable_blob_retries_its_own_task_not_its_batch_mates(
    settings: Settings, tiny_llava: str
) -> None:
    executor = executor_for(settings, tiny_llava, batch_window_ms=500, batch_max=8)
    try:
        good = put_image(executor, (0, 200, 0), (32, 32))
        # A directory where a blob should be: reading it is an OSError, as a flaky volume gives.
        broken = "ef" * 32
        (settings.data_dir / "blobs" / "original" / broken[:2] / broken).mkdir(parents=True)
        before = _batches_run(executor)
        outcomes: dict[str, object] = {}

        def run(sha: str) -> None:
            try:
                outcomes[sha] = executor.run(caption_task(tiny_llava, sha))
            except OSError as error:
                outcomes[sha] = error

        threads = [threading.Thread(target=run, args=(sha,)) for sha in (good, broken)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert _batches_run(executor) - before == 1  # the two tasks shared one batch
        assert isinstance(outcomes[broken], IsADirectoryError)  # its task retries
        answered = outcomes[good]
        assert isinstance(answered, list)
        assert isinstance(answered[0]["caption"], str)
    finally:
        executor.close()
