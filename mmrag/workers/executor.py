"""The task functions themselves: blob ids in, plain results out, micro-batched per model.

The same :class:`ToolExecutor` runs inside a Celery worker (distributed mode) and inside
the API process (embedded mode), so both modes share one code path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, cast

from PIL import Image

from mmrag.config import EngineSettings, Settings
from mmrag.errors import InvalidInput, MmragError, ModelFailed, Unavailable, UnknownModel
from mmrag.models.cache import ModelCache
from mmrag.models.engine.options import EngineOptions
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import Answer, Box, VisionModel, VisionOptions
from mmrag.retrieval.blobs import BlobStore
from mmrag.retrieval.decode import decode_image
from mmrag.workers.batching import BatcherPool
from mmrag.workers.failures import is_transient
from mmrag.workers.protocol import ItemResult, ToolItem, ToolName, ToolTask, error_result

log = logging.getLogger(__name__)

VisionFactory = Callable[[str, VisionOptions], VisionModel]
# The cache checks what it hands out against a class; VisionModel is abstract, hence the cast.
_VISION_MODEL = cast(Any, VisionModel)


@dataclass(frozen=True)
class _Work:
    item: ToolItem


@dataclass(frozen=True)
class _Retry:
    """A transient failure of one item alone (its blob unreadable just now): raised in the
    task that holds the item, so that task retries, and not its batch-mates from other
    tasks, which a failure of the whole batch function would reach."""

    error: Exception


_Outcome = ItemResult | _Retry


@dataclass(frozen=True)
class _Decoded:
    index: int  # in the batch
    image: Image.Image
    item: ToolItem


class ToolExecutor:
    """Runs tool tasks against this process's models."""

    def __init__(
        self,
        settings: Settings,
        blobs: BlobStore,
        factory: VisionFactory = create_vision_model,
    ) -> None:
        workers = settings.workers
        self.settings = settings
        self.blobs = blobs
        self.models = ModelCache(
            idle_unload_s=workers.idle_unload_s,
            memory_budget_bytes=workers.memory_budget_mb * 1024 * 1024,
        )
        self.batchers: BatcherPool[_Work, _Outcome] = BatcherPool(
            workers.batch_max, workers.batch_window_ms / 1000
        )
        self._factory = factory
        self._adapters: dict[str, VisionModel] = {}
        self._adapters_lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def options(self) -> VisionOptions:
        return vision_options(self.settings)

    def run(self, task: ToolTask, timeout_s: float | None = None) -> list[ItemResult]:
        """One result per item, in order; bad items get error envelopes.

        Raises only for failures worth retrying (an exception from the forward pass). Items
        still unfinished after ``timeout_s`` get an :class:`Unavailable` envelope; their
        forward pass runs on (a thread cannot be stopped) but nobody waits for it.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            if task.model not in self.settings.served_vision_specs():
                # The API checks first; this guards against anyone else who can write to Redis.
                raise UnknownModel(f"model {task.model} is not served by this worker")
            model = self.adapter(task.model)
            if not model.serves(task.tool):
                raise InvalidInput(model.unserved_reason(task.tool))
        except MmragError as error:
            return [error_result(error)] * len(task.items)
        results: list[ItemResult | None] = [None] * len(task.items)
        pending: list[tuple[int, Hashable, _Work]] = []
        for index, item in enumerate(task.items):
            try:
                item.check_for(task.tool)
            except MmragError as error:
                results[index] = error_result(error)
                continue
            # Images are decoded in the batch, not here: a task of a thousand items then holds
            # a batch of pixels at a time, not a thousand.
            pending.append((index, _batch_key(task, item), _Work(item)))
        futures = [
            (index, self.batchers.get(key, self._batch_function(task)).submit(work))
            for index, key, work in pending
        ]
        for index, future in futures:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                outcome = future.result(timeout=remaining)
            except FutureTimeout:
                results[index] = error_result(
                    Unavailable(f"{task.tool} ran past its time limit of {timeout_s:.0f} s")
                )
                continue
            if isinstance(outcome, _Retry):
                raise outcome.error
            results[index] = outcome
        return [result for result in results if result is not None]

    def adapter(self, spec: str) -> VisionModel:
        """The (possibly unloaded) adapter for ``spec``; built once, cheap."""
        with self._adapters_lock:
            model = self._adapters.get(spec)
            if model is None:
                model = self._factory(spec, self.options())
                self._adapters[spec] = model
            return model

    def preload(self, spec: str) -> None:
        with self.models.lease(spec, lambda: self.adapter(spec), _VISION_MODEL):
            pass

    def _batch_function(self, task: ToolTask) -> Callable[[Sequence[_Work]], Sequence[_Outcome]]:
        tool, spec = task.tool, task.model

        def run_batch(batch: Sequence[_Work]) -> list[_Outcome]:
            results: list[_Outcome | None] = [None] * len(batch)
            decoded: list[_Decoded] = []
            for index, work in enumerate(batch):
                try:
                    image = decode_image(
                        self.blobs.read("original", work.item.sha256), self.settings.limits
                    )
                except MmragError as error:
                    results[index] = error_result(error)
                    continue
                except Exception as error:
                    if not is_transient(error):
                        raise
                    results[index] = _Retry(error)
                    continue
                decoded.append(_Decoded(index, image.image, work.item))
            if decoded:
                try:
                    with self.models.lease(
                        spec, lambda: self.adapter(spec), _VISION_MODEL
                    ) as model:
                        for entry, result in zip(
                            decoded, _isolated(model, tool, decoded), strict=True
                        ):
                            results[entry.index] = result
                except MmragError as error:  # the model cannot load: every item says why
                    for entry in decoded:
                        results[entry.index] = error_result(error)
            return [result for result in results if result is not None]

        return run_batch

    def start_sweeper(self, interval_s: float = 30.0) -> None:
        """Unload idle models in the background (workers and the embedded runner)."""
        if self.models.idle_unload_s <= 0 or self._sweeper is not None:
            return

        def sweep() -> None:
            while not self._stop.wait(min(interval_s, self.models.idle_unload_s)):
                self.models.sweep()

        self._sweeper = threading.Thread(target=sweep, name="model-sweeper", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        self._stop.set()
        self.batchers.close()
        self.models.unload_all()


def vision_options(settings: Settings) -> VisionOptions:
    """The vision adapters' options from the settings (also `mmrag eval`'s)."""
    models = settings.models
    return VisionOptions(
        device=models.device,
        cpu_threads=models.cpu_threads,
        cache_dir=models.cache_dir,
        max_new_tokens=models.max_new_tokens,
        engine=engine_options(models.engine),
    )


def engine_options(settings: EngineSettings) -> EngineOptions:
    """The engine settings as the engine adapter's options (models import no settings)."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return EngineOptions(**settings.model_dump(exclude={"api_key"}), api_key=key)


def _batch_key(task: ToolTask, item: ToolItem) -> Hashable:
    """Items that may share a forward pass: same model and tool, and for captions the same
    detail, for detection the same vocabulary (one text encoding for the whole batch)."""
    match task.tool:
        case "caption":
            return (task.model, task.tool, item.detail)
        case "detect":
            return (task.model, task.tool, item.phrases)
        case _:
            return (task.model, task.tool)


def _isolated(model: VisionModel, tool: ToolName, batch: Sequence[_Decoded]) -> list[ItemResult]:
    """The batch's results; if the batch fails for good, each item again on its own, so one
    image the model cannot take fails alone instead of taking its batch-mates with it.

    A transient failure (I/O, memory) is raised: the task is retried whole.
    """
    try:
        return _apply(model, tool, batch)
    except MmragError as error:
        if len(batch) == 1:
            return [error_result(error)]
    except Exception as error:
        if is_transient(error):
            raise
        if len(batch) == 1:
            log.exception("%s failed on image %s", tool, batch[0].item.sha256)
            return [error_result(ModelFailed(f"{tool} failed on this image: {error}"))]
    return [result for entry in batch for result in _isolated(model, tool, [entry])]


def _apply(model: VisionModel, tool: ToolName, batch: Sequence[_Decoded]) -> list[ItemResult]:
    images = [work.image for work in batch]
    match tool:
        case "caption":
            captions = model.caption(images, batch[0].item.detail)
            return [{"caption": caption} for caption in captions]
        case "vqa":
            questions = [work.item.question or "" for work in batch]
            return [_answer(answer) for answer in model.answer(images, questions)]
        case "ground":
            grounded = model.ground(images, [work.item.phrases for work in batch])
            return [_boxes(boxes) for boxes in grounded]
        case "detect":
            detected = model.detect(images, batch[0].item.phrases)
            return [_boxes(boxes) for boxes in detected]


def _answer(answer: Answer) -> ItemResult:
    return {"answer": answer.text, "score": answer.score}


def _boxes(boxes: Sequence[Box]) -> ItemResult:
    return {
        "boxes": [
            {"label": box.label, "score": box.score, "box": [round(v, 2) for v in box.box]}
            for box in boxes
        ]
    }
