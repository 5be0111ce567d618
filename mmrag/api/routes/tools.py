"""One tool on one image: ``/v1/caption``, ``/v1/vqa``, ``/v1/ground``, ``/v1/detect``.

Each takes JSON naming an indexed image (``image_id``), or a multipart form with the image
as ``file`` and the same fields as form fields. An uploaded image is indexed first (same
bytes, same id), so what the model saw is written back and searchable like any other.
With no worker for the tool, the answer is 503 with ``Retry-After``, at once.
"""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from mmrag.api.deps import TenantServicesDep
from mmrag.api.limits import Limits
from mmrag.api.openapi import BODY_PROBLEMS, V1_PROBLEMS, json_or_form_body, problems
from mmrag.api.schemas import (
    BoxesResponse,
    CaptionRequest,
    CaptionResponse,
    DetectRequest,
    GroundRequest,
    OneImageRequest,
    VqaRequest,
    VqaResponse,
)
from mmrag.api.security import Caller, CanRead
from mmrag.api.uploads import read_upload
from mmrag.errors import Forbidden, InvalidInput
from mmrag.retrieval.annotations import normalise_label
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.json_bounds import check_json_text
from mmrag.services import Services
from mmrag.workers.protocol import BoxesOutput, ToolName

router = APIRouter(prefix="/v1", tags=["tools"], responses=V1_PROBLEMS)

R = TypeVar("R", bound=OneImageRequest)
_LIST_FIELDS = ("phrases", "labels")
_FORM_LIMITS = {"max_files": 1, "max_fields": 128}

_PROBLEMS = {**BODY_PROBLEMS, **problems(404, 415, 429, 507)}


@router.post(
    "/caption",
    response_model=CaptionResponse,
    responses=_PROBLEMS,
    openapi_extra=json_or_form_body(CaptionRequest, "image_id"),
)
async def caption(request: Request, services: TenantServicesDep, key: CanRead) -> CaptionResponse:
    body, image_id, spec = await _tool_request(request, "caption", CaptionRequest, services, key)
    started = time.perf_counter()
    found = await run_in_threadpool(services.tools.caption, image_id, body.detail, spec)
    return CaptionResponse(
        image_id=image_id, model=spec, took_ms=_since(started), caption=found.caption
    )


@router.post(
    "/vqa",
    response_model=VqaResponse,
    responses=_PROBLEMS,
    openapi_extra=json_or_form_body(VqaRequest, "image_id"),
)
async def vqa(request: Request, services: TenantServicesDep, key: CanRead) -> VqaResponse:
    body, image_id, spec = await _tool_request(request, "vqa", VqaRequest, services, key)
    started = time.perf_counter()
    found = await run_in_threadpool(services.tools.vqa, image_id, body.question, spec)
    return VqaResponse(
        image_id=image_id,
        model=spec,
        took_ms=_since(started),
        answer=found.answer,
        score=found.score,
    )


@router.post(
    "/ground",
    response_model=BoxesResponse,
    responses=_PROBLEMS,
    openapi_extra=json_or_form_body(GroundRequest, "image_id"),
)
async def ground(request: Request, services: TenantServicesDep, key: CanRead) -> BoxesResponse:
    body, image_id, spec = await _tool_request(request, "ground", GroundRequest, services, key)
    started = time.perf_counter()
    found = await run_in_threadpool(services.tools.ground, image_id, body.phrases, spec)
    return await _boxes(services, image_id, spec, started, body.phrases, found)


@router.post(
    "/detect",
    response_model=BoxesResponse,
    responses=_PROBLEMS,
    openapi_extra=json_or_form_body(DetectRequest, "image_id"),
)
async def detect(request: Request, services: TenantServicesDep, key: CanRead) -> BoxesResponse:
    body, image_id, spec = await _tool_request(request, "detect", DetectRequest, services, key)
    started = time.perf_counter()
    found = await run_in_threadpool(services.tools.detect, image_id, body.labels, spec)
    return await _boxes(services, image_id, spec, started, body.labels, found)


async def _tool_request(
    request: Request, tool: ToolName, kind: type[R], services: Services, key: Caller
) -> tuple[R, str, str]:
    """The validated body, the id of the image it is about (an upload is indexed) and the
    model spec to run."""
    content_type = request.headers.get("content-type", "")
    upload: UploadFile | None = None
    if content_type.startswith("multipart/form-data"):
        form = await request.form(**_FORM_LIMITS)
        fields: dict[str, Any] = {}
        for name in form:
            if name == "file":
                continue
            values = form.getlist(name)
            if any(not isinstance(value, str) for value in values):
                raise InvalidInput(f"form field {name!r} must be text; the image goes in 'file'")
            fields[name] = values if name in _LIST_FIELDS else values[-1]
        candidate = form.get("file")
        if candidate is not None and not isinstance(candidate, UploadFile):
            raise InvalidInput("'file' must be an uploaded file")
        upload = candidate
    elif content_type.startswith("application/json") or not content_type:
        raw = await request.body()
        bounds = services.settings.limits
        check_json_text(raw, bounds.max_json_depth, bounds.max_json_bytes)
        try:
            fields = json.loads(raw) if raw else {}
        except json.JSONDecodeError as error:
            raise InvalidInput(f"the body is not valid JSON: {error.msg} at {error.pos}") from None
        except UnicodeDecodeError:
            # json.loads decodes bytes first: a body that is not UTF-8 fails there.
            raise InvalidInput("the body is not valid JSON: it is not UTF-8 text") from None
        if not isinstance(fields, dict):
            raise InvalidInput("the body must be a JSON object")
    else:
        raise InvalidInput("send JSON, or multipart/form-data with the image as 'file'")
    body = _validate(kind, fields)
    if (upload is None) == (body.image_id is None):
        raise InvalidInput("give exactly one of image_id or an uploaded file")
    # Before an upload is indexed: a refused request leaves nothing behind.
    spec = services.tools.model_for(tool, body.model)
    if upload is None:
        assert body.image_id is not None
        return body, body.image_id, spec
    if not key.may("write"):
        raise Forbidden(f"API key {key.name!r} lacks the 'write' scope needed to upload")
    data = await read_upload(upload, services.settings.limits.max_image_bytes)
    item = IngestItem.upload(data, upload.filename or "upload", (), {})
    limits: Limits = request.app.state.limits
    await run_in_threadpool(limits.admit_images, key, 1)
    report = await run_in_threadpool(services.ingest, [item])
    limits.count_images(key, report)
    result = report.results[0]
    if result.image is None:
        raise result.error or InvalidInput("the upload could not be indexed")
    return body, result.image.image_id, spec


def _validate(kind: type[R], fields: dict[str, Any]) -> R:
    try:
        return kind.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}") from None


async def _boxes(
    services: Services,
    image_id: str,
    spec: str,
    started: float,
    asked: list[str],
    found: BoxesOutput,
) -> BoxesResponse:
    payload = await run_in_threadpool(services.image, image_id)
    labels = [normalise_label(box.label) for box in found.boxes]
    counts = {phrase: labels.count(normalise_label(phrase)) for phrase in asked}
    return BoxesResponse(
        image_id=image_id,
        model=spec,
        took_ms=_since(started),
        boxes=found.boxes,
        width=int(payload.get("width", 0)),
        height=int(payload.get("height", 0)),
        counts=counts,
    )


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
