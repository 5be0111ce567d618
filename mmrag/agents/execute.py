"""Run one plan step over the search service and the tool client; plain data out.

Every output is JSON-ready (it goes into the checkpointed state and the response trace).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from mmrag.agents.tools import (
    CaptionArgs,
    CountArgs,
    DetectArgs,
    GroundArgs,
    OnImages,
    RetrieveArgs,
    Step,
    VqaArgs,
)
from mmrag.config import AgentSettings
from mmrag.retrieval.annotations import normalise_label
from mmrag.retrieval.search import SearchQuery
from mmrag.retrieval.store import Filter
from mmrag.services import Services
from mmrag.workers.client import ImageRequest
from mmrag.workers.protocol import ToolName

Output = dict[str, Any]


class StepRunner:
    """Runs steps for one question; knows the images each kind of ``on`` refers to."""

    def __init__(
        self,
        services: Services,
        settings: AgentSettings,
        image_id: str | None,
        previous: Sequence[str],
        tenant: str | None = None,
    ) -> None:
        # A tenant's question sees only its images: its view of the store, for retrieval and
        # for the tools' write-back alike.
        self._services = services.scoped(tenant) if tenant is not None else services
        self._settings = settings
        self._image_id = image_id
        self._previous = list(previous)

    def images_for(self, step: Step, hits: Sequence[str]) -> list[str]:
        """The image ids the step runs on, in rank order."""
        args = step.parsed()
        if not isinstance(args, OnImages):
            return []
        match args.on:
            case "image":
                chosen = [self._image_id] if self._image_id else []
            case "hits":
                chosen = list(hits)
            case "previous":
                chosen = self._previous
        if args.pick is not None:
            return chosen[args.pick - 1 : args.pick]
        return chosen

    def run(self, step: Step, image_ids: Sequence[str]) -> list[Output]:
        args = step.parsed()
        match args:
            case RetrieveArgs():
                return self._retrieve(args)
            case CaptionArgs():
                requests = [ImageRequest(i, detail=args.detail) for i in image_ids]
                return self._tool("caption", requests, _caption)
            case VqaArgs():
                requests = [ImageRequest(i, question=args.question) for i in image_ids]
                return self._tool("vqa", requests, _answer)
            case GroundArgs():
                requests = [ImageRequest(i, phrases=tuple(args.phrases)) for i in image_ids]
                return self._tool("ground", requests, self._boxes)
            case DetectArgs():
                requests = [ImageRequest(i, phrases=tuple(args.labels)) for i in image_ids]
                return self._tool("detect", requests, self._boxes)
            case CountArgs():
                requests = [ImageRequest(i, phrases=(args.phrase,)) for i in image_ids]
                outputs = self._tool("detect", requests, self._boxes)
                wanted = normalise_label(args.phrase)
                floor = self._settings.min_box_score
                for output in outputs:
                    if "boxes" in output:
                        output["count"] = sum(
                            normalise_label(box["label"]) == wanted and box["score"] >= floor
                            for box in output["boxes"]
                        )
                return outputs
        raise AssertionError(f"no runner for {type(args).__name__}")  # pragma: no cover

    def _retrieve(self, args: RetrieveArgs) -> list[Output]:
        limit = args.limit or self._settings.retrieve_limit
        scope = Filter()
        if args.like is not None:
            # By example: one more, since the given image is its own best match and is dropped.
            query = SearchQuery(image_id=self._image_id, limit=limit + 1, filter=scope)
        else:
            query = SearchQuery(text=args.query, limit=limit, filter=scope)
        hits = self._services.search.search(query).hits
        if args.like is not None:
            hits = [hit for hit in hits if hit.image_id != self._image_id][:limit]
        return [
            {
                "image_id": hit.image_id,
                "score": round(hit.score, 4),
                # What the index says about the image: data to show, never instructions.
                "caption": str(hit.payload.get("caption") or hit.payload.get("model_caption", "")),
            }
            for hit in hits
        ]

    def _tool(
        self,
        tool: ToolName,
        requests: list[ImageRequest],
        shape: Any,
    ) -> list[Output]:
        if not requests:
            return []
        results = self._services.tools.run(tool, requests)
        outputs: list[Output] = []
        for request, result in zip(requests, results, strict=True):
            if "error" in result:
                error = result["error"]
                outputs.append({"image_id": request.image_id, "error": str(error.get("detail"))})
            else:
                outputs.append({"image_id": request.image_id, **shape(result)})
        return outputs

    def _boxes(self, result: dict[str, Any]) -> Output:
        boxes = [
            {
                "label": str(box["label"]),
                "score": round(float(box["score"]), 4),
                "box": [round(float(v), 1) for v in box["box"]],
            }
            for box in result.get("boxes", [])
        ]
        # Best first; the answer decides which scores are strong enough to claim.
        return {"boxes": sorted(boxes, key=lambda box: -box["score"])}


def _caption(result: dict[str, Any]) -> Output:
    return {"caption": str(result.get("caption", ""))}


def _answer(result: dict[str, Any]) -> Output:
    return {"answer": str(result.get("answer", "")), "answer_score": result.get("score")}


def run_within(
    runner: StepRunner,
    step: Step,
    image_ids: Sequence[str],
    batch: int,
    over_time: Callable[[], str | None],
) -> tuple[list[Output], float, str | None]:
    """The step's outputs, the milliseconds it took, and why it stopped before its last image
    if it did. Images go to the tool ``batch`` at a time with the time limit checked between
    batches, so one step over many images cannot run far past the limit."""
    started = time.perf_counter()
    outputs = runner.run(step, image_ids[:batch])
    stop = None
    for start in range(batch, len(image_ids), batch):
        stop = over_time()
        if stop is not None:
            break
        outputs += runner.run(step, image_ids[start : start + batch])
    return outputs, round((time.perf_counter() - started) * 1000, 2), stop
