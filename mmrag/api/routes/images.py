"""``/v1/images``: add images (upload, URLs, server paths), read them, list them, delete them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from mmrag.api.deps import TenantServicesDep
from mmrag.api.events import EVENT_STREAM, Progress, run_with_progress, sse, wants_events
from mmrag.api.limits import Limits
from mmrag.api.metrics import Metrics
from mmrag.api.openapi import BODY_PROBLEMS, V1_PROBLEMS, binary, event_stream, problems
from mmrag.api.path_ids import HexIdPath
from mmrag.api.problems import problem_body, status_of
from mmrag.api.schemas import (
    FromPathsRequest,
    FromUrlsRequest,
    ImageCreated,
    ImageList,
    ImagePublic,
    ImagesCreated,
    IngestFailure,
)
from mmrag.api.security import Caller, CanRead, CanWrite
from mmrag.api.uploads import read_upload
from mmrag.errors import InvalidInput, MmragError, TooLarge
from mmrag.retrieval.decode import mime_type_of_format, sniff_mime_type
from mmrag.retrieval.items import (
    IngestItem,
    IngestReport,
    ProgressCallback,
    clean_captions,
    clean_metadata,
    items_from_paths,
)
from mmrag.retrieval.json_bounds import check_json_text
from mmrag.retrieval.sources import ServerPaths
from mmrag.services import Services
from mmrag.tenancy.quota import known_bytes

router = APIRouter(prefix="/v1/images", tags=["images"], responses=V1_PROBLEMS)

# A write answers JSON, or a stream of progress events when the client accepts them.
_CREATED = {
    201: event_stream(
        "the stored images as JSON, or progress events then the result (Accept: text/event-stream)",
        "progress",
        "result",
    ),
    **BODY_PROBLEMS,
    **problems(429, 507),
}
_NOT_FOUND = problems(404)

ImageIdPath = HexIdPath
_READ_CHUNK = 1024 * 1024


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ImagesCreated,
    responses={**_CREATED, **problems(415)},
)
async def upload_images(
    request: Request,
    services: TenantServicesDep,
    _: CanWrite,
    files: Annotated[list[UploadFile], File(description="image files", min_length=1)],
    captions: Annotated[
        list[str] | None, Form(description="one caption per file, in order; empty for none")
    ] = None,
    metadata: Annotated[str | None, Form(description="a JSON object for every file")] = None,
) -> ImagesCreated | StreamingResponse:
    limits = services.settings.limits
    if len(files) > limits.max_upload_files:
        raise TooLarge(f"{len(files)} files in one request; the limit is {limits.max_upload_files}")
    if captions is not None and len(captions) not in (0, len(files)):
        raise InvalidInput(f"{len(captions)} captions for {len(files)} files: give one per file")
    shared_metadata = _parse_metadata(metadata, services)
    items = []
    for index, upload in enumerate(files):
        data = await read_upload(upload, limits.max_image_bytes)
        caption = clean_captions([captions[index]], limits) if captions else []
        items.append(
            IngestItem.upload(data, upload.filename or f"file-{index}", caption, shared_metadata)
        )
    return await _ingest(request, services, items)


@router.post(
    "/from-urls",
    status_code=status.HTTP_201_CREATED,
    response_model=ImagesCreated,
    responses={**_CREATED, **problems(415, 502)},
)
async def images_from_urls(
    request: Request, body: FromUrlsRequest, services: TenantServicesDep, _: CanWrite
) -> ImagesCreated | StreamingResponse:
    limits = services.settings.limits
    if len(body.urls) > limits.max_urls:
        raise TooLarge(f"{len(body.urls)} URLs in one request; the limit is {limits.max_urls}")
    if body.captions is not None and len(body.captions) != len(body.urls):
        raise InvalidInput(f"{len(body.captions)} captions for {len(body.urls)} URLs")
    metadata = clean_metadata(body.metadata or {}, limits)
    captions = [clean_captions([caption or ""], limits) for caption in body.captions or []]
    fetcher = services.url_fetcher()
    items = [
        IngestItem.url(fetcher, url, captions[index] if captions else (), metadata)
        for index, url in enumerate(body.urls)
    ]
    try:
        response = await _ingest(request, services, items)
    except BaseException:
        fetcher.close()
        raise
    if isinstance(response, StreamingResponse):
        response.background = BackgroundTask(fetcher.close)  # after the last event
    else:
        fetcher.close()
    return response


@router.post(
    "/from-paths",
    status_code=status.HTTP_201_CREATED,
    response_model=ImagesCreated,
    responses={**_CREATED, **problems(404, 415)},
)
async def images_from_paths(
    request: Request, body: FromPathsRequest, services: TenantServicesDep, _: CanWrite
) -> ImagesCreated | StreamingResponse:
    settings = services.settings
    metadata = clean_metadata(body.metadata or {}, settings.limits)
    paths = ServerPaths(settings.allowed_roots, settings.limits)
    items = await run_in_threadpool(items_from_paths, paths, body.paths, metadata)
    if not items:
        raise InvalidInput("no image files under the given paths")
    if len(items) > settings.limits.max_request_images:
        raise TooLarge(
            f"{len(items)} images under the given paths; one request takes at most "
            f"{settings.limits.max_request_images} (index larger folders with `mmrag index`)"
        )
    return await _ingest(request, services, items)


@router.get("", response_model=ImageList)
async def list_images(
    services: TenantServicesDep,
    _: CanRead,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ImageList:
    def page() -> tuple[list[ImagePublic], int]:
        found = []
        for position, hit in enumerate(services.store.scroll()):
            if position >= offset + limit:
                break
            if position >= offset:
                found.append(ImagePublic.from_payload(hit.payload))
        return found, services.store.count()

    items, total = await run_in_threadpool(page)
    return ImageList(items=items, total=total, limit=limit, offset=offset)


@router.get("/{image_id:hex32}", response_model=ImagePublic, responses=_NOT_FOUND)
async def get_image(image_id: ImageIdPath, services: TenantServicesDep, _: CanRead) -> ImagePublic:
    payload = await run_in_threadpool(services.image, image_id)
    return ImagePublic.from_payload(payload)


@router.get(
    "/{image_id:hex32}/content",
    response_class=StreamingResponse,
    responses={200: binary("image/*", "the original bytes"), **_NOT_FOUND},
)
async def image_content(
    image_id: ImageIdPath, services: TenantServicesDep, _: CanRead
) -> StreamingResponse:
    payload = await run_in_threadpool(services.image, image_id)
    handle = await run_in_threadpool(services.blobs.open, "original", payload["sha256"])
    # Streamed in chunks: an original can be tens of megabytes.
    return StreamingResponse(
        iterate_in_threadpool(iter(partial(handle.read, _READ_CHUNK), b"")),
        media_type=mime_type_of_format(payload["format"]),
        headers={**_immutable(), "Content-Length": str(payload["bytes"])},
        background=BackgroundTask(handle.close),
    )


@router.get(
    "/{image_id:hex32}/thumbnail",
    response_class=Response,
    responses={200: binary("image/*", "a small JPEG or PNG"), **_NOT_FOUND},
)
async def image_thumbnail(
    image_id: ImageIdPath, services: TenantServicesDep, _: CanRead
) -> Response:
    payload = await run_in_threadpool(services.image, image_id)
    data = await run_in_threadpool(services.blobs.read, "thumbnail", payload["sha256"])
    return Response(data, media_type=sniff_mime_type(data), headers=_immutable())


@router.delete("/{image_id:hex32}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_image(image_id: ImageIdPath, services: TenantServicesDep, _: CanWrite) -> Response:
    await run_in_threadpool(services.delete_image, image_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _parse_metadata(raw: str | None, services: Services) -> dict[str, Any]:
    if raw is None or not raw.strip():
        return {}
    limits = services.settings.limits
    check_json_text(raw, limits.max_json_depth, limits.max_json_bytes, "metadata")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"metadata is not valid JSON: {error.msg} at {error.pos}") from None
    return clean_metadata(parsed, services.settings.limits)


async def _ingest(
    request: Request, services: Services, items: list[IngestItem]
) -> ImagesCreated | StreamingResponse:
    """Ingest and answer with the created images, or stream progress events first. The
    key's images a day and the tenant's quota are checked first (on the bytes known before
    fetching: a URL's or a path's are not), and nothing is stored past them."""
    metrics: Metrics = request.app.state.metrics
    limits: Limits = request.app.state.limits
    caller: Caller = request.state.caller
    await run_in_threadpool(limits.admit_images, caller, len(items))
    # The ingest checks the quota again, under its lock; asked here too so that a streamed
    # upload is refused with a 413 before its stream starts.
    await run_in_threadpool(services.admit_ingest, len(items), known_bytes(items))

    def ingest(items: list[IngestItem], progress: ProgressCallback | None = None) -> IngestReport:
        report = services.ingest(items, progress)
        limits.count_images(caller, report)
        return report

    if wants_events(request):
        events = _ingest_events(ingest, items, metrics, caller.tenant)
        return StreamingResponse(events, media_type=EVENT_STREAM)
    report = await run_in_threadpool(ingest, items)
    metrics.count_ingest(report, caller.tenant)
    return _created_or_raise(report)


async def _ingest_events(
    ingest: Callable[..., IngestReport], items: list[IngestItem], metrics: Metrics, tenant: str
) -> AsyncIterator[str]:
    try:
        async for update in run_with_progress(partial(ingest, items)):
            if isinstance(update, Progress):
                yield sse("progress", update)
            else:
                metrics.count_ingest(update, tenant)
                yield sse("result", _created_or_raise(update).model_dump_json())
    except MmragError as error:
        yield sse("error", problem_body(status_of(error), error.title, error.detail))


def _created_or_raise(report: IngestReport) -> ImagesCreated:
    created = _created(report)
    if not created.items:
        # Nothing was stored: the request as a whole failed, with the first item's reason.
        errors = [result.error for result in report.results if result.error is not None]
        raise errors[0] if errors else InvalidInput("nothing to ingest")
    return created


def _created(report: IngestReport) -> ImagesCreated:
    items = []
    failed = []
    for result in report.results:
        if result.image is not None:
            info = result.image
            items.append(
                ImageCreated(
                    id=info.image_id,
                    sha256=info.sha256,
                    width=info.width,
                    height=info.height,
                    created=datetime.fromisoformat(info.created),
                    duplicate=result.status == "duplicate",
                )
            )
        elif result.error is not None:
            failed.append(
                IngestFailure(
                    source=result.source,
                    status=status_of(result.error),
                    title=result.error.title,
                    detail=result.error.detail,
                )
            )
    return ImagesCreated(items=items, failed=failed)


def _immutable() -> dict[str, str]:
    # Content-addressed: the bytes behind an id never change.
    return {"Cache-Control": "public, max-age=31536000, immutable"}
