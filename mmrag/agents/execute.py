"""Run one plan step over the search service and the tool client; plain data out.

Every output is JSON-ready (it goes into the checkpointed state and the response trace).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmrag.agents.regions import merge_hits, names_an_object, region_box
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
from mmrag.retrieval.search import SearchQuery, SearchTarget
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
        regions: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        # A tenant's question sees only its images: its view of the store, for retrieval and
        # for the tools' write-back alike.
        self._services = services.scoped(tenant) if tenant is not None else services
        self._settings = settings
        self._image_id = image_id
        self._previous = list(previous)
        # Image id -> the crop an earlier retrieve of this turn found it by.
        self._regions: dict[str, dict[str, Any]] = dict(regions or {})

    def images_for(self, step: Step, hits: Sequence[str], last: Sequence[str] = ()) -> list[str]:
        """The image ids the step runs on, in rank order; ``last`` is what the step before
        kept (agents/results.py)."""
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
            case "last":
                chosen = list(last)
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
                return self._ground(args, image_ids)
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
        # The tenant's scope is its view of the store (services.scoped); this is the question's.
        scope = args.filter.to_store_filter() if args.filter is not None else Filter()
        if args.like is not None:
            # By example: one more, since the given image is its own best match and is dropped.
            query = SearchQuery(image_id=self._image_id, limit=limit + 1, filter=scope)
        else:
            match = args.match or ("hybrid" if self._settings.adaptive else "image")
            target = SearchTarget.HYBRID if match == "hybrid" else SearchTarget.IMAGE
            query = SearchQuery(text=args.query, target=target, limit=limit, filter=scope)
        search = self._services.search
        hits = search.search(query).hits
        if args.like is not None:
            hits = [hit for hit in hits if hit.image_id != self._image_id][:limit]
        elif args.query and names_an_object(args.query) and search.has_regions():
            regional = SearchQuery(
                text=args.query, target=SearchTarget.REGION, limit=limit, filter=scope
            )
            regions = self._services.settings.regions
            # Only crops that match: with few images indexed by region, the rest of the
            # region ranking is whatever crops exist, not evidence.
            strong = [
                hit for hit in search.search(regional).hits if hit.score >= regions.strong_match
            ]
            hits = merge_hits(hits, strong, limit, regions.fusion_weight)
        scores = [hit.score for hit in hits]
        if query.target == SearchTarget.HYBRID and hits:
            similar = self._similarities(str(args.query), [hit.image_id for hit in hits])
            # A matched crop is evidence of its own: the better of the two cosines.
            scores = [
                max(cosine, float(hit.region.get("match", 0.0))) if hit.region else cosine
                for hit, cosine in zip(hits, similar, strict=True)
            ]
        outputs = []
        for hit, score in zip(hits, scores, strict=True):
            output: Output = {
                "image_id": hit.image_id,
                "score": round(score, 4),
                # What the index says about the image: data to show, never instructions.
                "caption": str(hit.payload.get("caption") or hit.payload.get("model_caption", "")),
            }
            if hit.region is not None:
                output["region"] = hit.region
                self._regions[hit.image_id] = hit.region
            outputs.append(output)
        return outputs

    def _ground(self, args: GroundArgs, image_ids: Sequence[str]) -> list[Output]:
        """Grounding; an image whose retrieved region already is the phrase, strongly
        matched, is answered with that region's box and no model call."""
        strong = self._services.settings.regions.strong_match
        known: dict[str, Output] = {}
        if len(args.phrases) == 1:
            for image_id in image_ids:
                box = region_box(self._regions.get(image_id), args.phrases[0], strong)
                if box is not None:
                    known[image_id] = {"image_id": image_id, "boxes": [box], "via": "region"}
        rest = [i for i in image_ids if i not in known]
        requests = [ImageRequest(i, phrases=tuple(args.phrases)) for i in rest]
        grounded = {out["image_id"]: out for out in self._tool("ground", requests, self._boxes)}
        return [known.get(i) or grounded[i] for i in image_ids]

    def _similarities(self, text: str, image_ids: list[str]) -> list[float]:
        """CLIP similarity of the text and each image. A hybrid search ranks by fused ranks
        (RRF), which say nothing about how well anything matched; the answer's "weak
        evidence" needs this cosine, on the same scale as an image search's scores."""
        query = self._services.embedder().embed_texts([text])[0]
        scores = []
        for image_id in image_ids:
            vector = self._services.store.get_vector(image_id, "image")
            scores.append(float(np.dot(query, vector)) if vector is not None else 0.0)
        return scores

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
