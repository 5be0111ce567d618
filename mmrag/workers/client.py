"""The caller's side of the tools: check the request, run it, write what was seen back.

The API, the agent and bulk jobs call tools through :class:`ToolClient`; it never knows
whether the work runs in this process or on a Celery worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from mmrag.config import Settings
from mmrag.errors import InvalidInput, MmragError, NotFound, Unavailable, UnknownModel
from mmrag.models.spec import parse_spec
from mmrag.retrieval.annotations import AnnotationWriter
from mmrag.retrieval.store import VectorStore
from mmrag.workers.protocol import (
    TOOL_QUEUES,
    AnswerOutput,
    BoxesOutput,
    CaptionOutput,
    ItemResult,
    ToolItem,
    ToolName,
    ToolTask,
    error_result,
    raise_if_error,
)
from mmrag.workers.runner import TaskRunner

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ImageRequest:
    """One image (by index id) and the tool's arguments for it."""

    image_id: str
    detail: Literal["short", "detailed"] = "short"
    question: str | None = None
    phrases: tuple[str, ...] = ()


class ToolClient:
    def __init__(
        self,
        settings: Settings,
        runner: TaskRunner,
        store: VectorStore,
        annotations: AnnotationWriter,
        model_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self._store = store
        self._annotations = annotations
        # Raises at once while a model cannot load yet (a fixture still being built), so a
        # request is not left waiting on a build for its whole result timeout.
        self._model_ready = model_ready

    def model_for(self, tool: ToolName, requested: str | None) -> str:
        """The spec to run ``tool`` with: the configured one, or an allowed choice."""
        default = self.settings.model_spec(TOOL_QUEUES[tool])
        if not requested:
            return default
        spec = str(parse_spec(requested))  # malformed or unknown scheme: UnknownModel
        allowed = self.settings.served_vision_specs()
        if spec not in allowed:
            raise UnknownModel(
                f"model {spec} is not served here; choose one of {', '.join(sorted(allowed))}"
            )
        return spec

    def caption(
        self,
        image_id: str,
        detail: Literal["short", "detailed"] = "short",
        model: str | None = None,
    ) -> CaptionOutput:
        result = self.run("caption", [ImageRequest(image_id, detail=detail)], model)[0]
        return _parse(CaptionOutput, raise_if_error(result))

    def vqa(self, image_id: str, question: str, model: str | None = None) -> AnswerOutput:
        result = self.run("vqa", [ImageRequest(image_id, question=question)], model)[0]
        return _parse(AnswerOutput, raise_if_error(result))

    def ground(
        self, image_id: str, phrases: Sequence[str], model: str | None = None
    ) -> BoxesOutput:
        result = self.run("ground", [ImageRequest(image_id, phrases=tuple(phrases))], model)[0]
        return _parse(BoxesOutput, raise_if_error(result))

    def detect(self, image_id: str, labels: Sequence[str], model: str | None = None) -> BoxesOutput:
        result = self.run("detect", [ImageRequest(image_id, phrases=tuple(labels))], model)[0]
        return _parse(BoxesOutput, raise_if_error(result))

    def run(
        self,
        tool: ToolName,
        requests: Sequence[ImageRequest],
        model: str | None = None,
        write_back: bool = True,
        index_errors: Literal["log", "report"] = "log",
    ) -> list[ItemResult]:
        """Run ``tool`` over indexed images, one task; per-image results or error envelopes.

        Results of images that succeeded are written back into the index. An image whose
        write-back failed keeps its answer with ``index_errors="log"`` (one image asked for:
        the answer is what the caller wants), or gets an :class:`Unavailable` envelope with
        ``"report"`` (a job, whose items must be in the index when done, retries it).
        """
        spec = self.model_for(tool, model)
        if self._model_ready is not None:
            self._model_ready(spec)
        payloads = self._store.get([request.image_id for request in requests])
        items = []
        for request in requests:
            payload = payloads.get(request.image_id)
            if payload is None:
                raise NotFound(f"no image with id {request.image_id}")
            items.append(_item(payload["sha256"], request))
        task = ToolTask(tool=tool, model=spec, items=tuple(items))
        results = self.runner.run(task, self.settings.workers.result_wait_s)
        if not write_back:
            return results
        answered = []
        for request, result in zip(requests, results, strict=True):
            failed = None if "error" in result else self._write_back(tool, spec, request, result)
            if failed is not None and index_errors == "report":
                result = error_result(Unavailable(f"could not index the {tool}: {failed.detail}"))
            answered.append(result)
        return answered

    def _write_back(
        self, tool: ToolName, spec: str, request: ImageRequest, result: ItemResult
    ) -> MmragError | None:
        """Index what ``result`` says; the error if that failed."""
        try:
            match tool:
                case "caption":
                    caption = _parse(CaptionOutput, result).caption
                    self._annotations.apply_caption(request.image_id, caption, spec, request.detail)
                case "ground" | "detect":
                    boxes = _parse(BoxesOutput, result).model_dump(mode="json")["boxes"]
                    self._annotations.apply_boxes(request.image_id, request.phrases, boxes, spec)
                case "vqa":
                    pass  # an answer is about one question, not a fact to index
        except NotFound:
            log.info("image %s was deleted before its %s came back", request.image_id, tool)
        except MmragError as error:
            log.warning("could not index the %s of %s: %s", tool, request.image_id, error)
            return error
        return None


def _item(sha256: str, request: ImageRequest) -> ToolItem:
    try:
        return ToolItem(
            sha256=sha256,
            detail=request.detail,
            question=request.question,
            phrases=request.phrases,
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}") from error


def _parse(kind: type[M], result: dict[str, Any]) -> M:
    try:
        return kind.model_validate(result)
    except ValidationError as error:
        raise Unavailable(f"a worker sent a malformed {kind.__name__}: {error}") from error
