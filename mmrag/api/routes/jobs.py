"""``/v1/jobs``: bulk annotation jobs: submit, list, progress (also as events), cancel, export.

A job is submitted as JSON (a spec), or as multipart with a ``spec`` field (the same JSON)
and an ``archive`` file (zip or tar) when the source is an archive. It answers 202 with the
job's status at once; the work runs in the job driver.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import UploadFile

from mmrag.api.events import EVENT_STREAM, sse
from mmrag.api.openapi import BODY_PROBLEMS, V1_PROBLEMS, event_stream, problems, schema_ref
from mmrag.api.path_ids import HexIdPath
from mmrag.api.problems import problem_body, status_of
from mmrag.api.security import CanRead, CanRunJobs
from mmrag.config import LimitSettings
from mmrag.errors import InvalidInput, MmragError, TooLarge
from mmrag.retrieval.json_bounds import check_json_text
from mmrag.workers.jobs.export import MEDIA_TYPES, ExportFormat, export
from mmrag.workers.jobs.records import UNFINISHED, ItemRecord
from mmrag.workers.jobs.service import JobService, JobStatus
from mmrag.workers.jobs.spec import JobSpec

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=V1_PROBLEMS)
_NOT_FOUND = problems(404)

JobIdPath = HexIdPath
_EVENT_POLL_S = 0.5
# Past any job or item count; it keeps a page's offset within SQLite's 64-bit integers.
MAX_OFFSET = 100_000_000
_COPY_CHUNK = 1024 * 1024


def get_jobs(request: Request) -> JobService:
    jobs: JobService = request.app.state.jobs
    return jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]


class JobList(BaseModel):
    items: list[JobStatus]
    total: int
    limit: int
    offset: int


class JobItemList(BaseModel):
    """A page of a job's items in order: state, attempts, why it failed, its image."""

    items: list[ItemRecord]
    total: int
    limit: int
    offset: int


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobStatus,
    responses={**BODY_PROBLEMS, **problems(415, 429)},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": schema_ref(JobSpec)},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "string", "description": "the job spec as JSON"},
                            "archive": {"type": "string", "format": "binary"},
                        },
                        "required": ["spec"],
                    }
                },
            }
        }
    },
)
async def submit_job(request: Request, jobs: JobsDep, key: CanRunJobs) -> JobStatus:
    await run_in_threadpool(jobs.admit, key.tenant)  # before reading the body
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _submit_multipart(request, jobs, key.tenant)
    spec = _parse_spec(await request.body(), request.app.state.settings.limits)
    job = await run_in_threadpool(jobs.submit, spec, None, key.tenant)
    return await run_in_threadpool(jobs.status, job.id)


@router.get("", response_model=JobList)
async def list_jobs(
    jobs: JobsDep,
    key: CanRead,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobList:
    found, total = await run_in_threadpool(jobs.page, limit, offset, key.tenant)
    return JobList(items=found, total=total, limit=limit, offset=offset)


@router.get("/{job_id:hex32}", response_model=JobStatus, responses=_NOT_FOUND)
async def get_job(job_id: JobIdPath, jobs: JobsDep, key: CanRead) -> JobStatus:
    return await run_in_threadpool(jobs.status, job_id, key.tenant)


@router.post("/{job_id:hex32}/cancel", response_model=JobStatus, responses=_NOT_FOUND)
async def cancel_job(job_id: JobIdPath, jobs: JobsDep, key: CanRunJobs) -> JobStatus:
    return await run_in_threadpool(jobs.cancel, job_id, key.tenant)


@router.get("/{job_id:hex32}/items", response_model=JobItemList, responses=_NOT_FOUND)
async def job_items(
    job_id: JobIdPath,
    jobs: JobsDep,
    key: CanRead,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobItemList:
    def page() -> JobItemList:
        total = jobs.status(job_id, key.tenant).total  # another tenant's job: 404
        return JobItemList(
            items=list(jobs.items(job_id, offset, limit)), total=total, limit=limit, offset=offset
        )

    return await run_in_threadpool(page)


@router.get(
    "/{job_id:hex32}/events",
    response_class=StreamingResponse,
    responses={
        200: event_stream(
            "the job's status whenever it moves, then once at its end", "progress", "result"
        ),
        **_NOT_FOUND,
    },
)
async def job_events(job_id: JobIdPath, jobs: JobsDep, key: CanRead) -> StreamingResponse:
    """``progress`` events (the job's status) whenever its counts move, then one ``result``
    event when it completes or is cancelled; ``error`` (problem+json) if it cannot be read."""
    # An unknown id, or another tenant's: 404 before the stream.
    first = await run_in_threadpool(jobs.status, job_id, key.tenant)
    return StreamingResponse(_events(jobs, first), media_type=EVENT_STREAM)


@router.get(
    "/{job_id:hex32}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the export: COCO or Label Studio JSON, or JSON lines",
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in sorted(set(MEDIA_TYPES.values()))
            },
        },
        **_NOT_FOUND,
    },
)
async def export_job(
    job_id: JobIdPath,
    jobs: JobsDep,
    key: CanRead,
    format: Annotated[ExportFormat, Query(description="coco, jsonl or labelstudio")] = "jsonl",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="first item of the page")] = 0,
    limit: Annotated[
        int | None, Query(ge=1, le=MAX_OFFSET, description="items in the page (all if none)")
    ] = None,
) -> StreamingResponse:
    await run_in_threadpool(jobs.status, job_id, key.tenant)  # another tenant's job: 404
    job = await run_in_threadpool(jobs.store.get, job_id)
    lines = export(format, job.spec, lambda: jobs.items(job_id, offset, limit))
    extension = "jsonl" if format == "jsonl" else "json"
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="job-{job_id}-{format}.{extension}"'
        },
    )


# -- internals ---------------------------------------------------------------------------


def _parse_spec(raw: bytes | str, limits: LimitSettings) -> JobSpec:
    # The JSON body was bounded by the middleware; the multipart form's spec field is not.
    check_json_text(raw, limits.max_json_depth, limits.max_json_bytes, "spec")
    try:
        return JobSpec.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}") from None


async def _submit_multipart(request: Request, jobs: JobService, tenant: str) -> JobStatus:
    limits = request.app.state.settings.limits
    async with request.form(max_files=1, max_fields=4, max_part_size=1024 * 1024) as form:
        raw_spec = form.get("spec")
        if not isinstance(raw_spec, str):
            raise InvalidInput("spec: give the job spec as a JSON form field")
        spec = _parse_spec(raw_spec, limits)
        upload = form.get("archive")
        if spec.source.kind != "archive":
            if upload is not None:
                raise InvalidInput("archive: only an archive source takes an uploaded archive")
            job = await run_in_threadpool(jobs.submit, spec, None, tenant)
            return await run_in_threadpool(jobs.status, job.id)
        if not isinstance(upload, UploadFile):
            raise InvalidInput("archive: an archive source needs the archive file")
        saved = await run_in_threadpool(
            _save_upload, upload, jobs.services.settings.jobs_dir, limits.max_request_bytes
        )
    try:
        job = await run_in_threadpool(jobs.submit, spec, saved, tenant)
    finally:
        saved.unlink(missing_ok=True)  # submit moved it where it keeps archives, unless refused
    return await run_in_threadpool(jobs.status, job.id)


def _save_upload(upload: UploadFile, directory: FilePath, limit: int) -> FilePath:
    """The upload copied to a file of its own (archives are read from disk, never held)."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".tar" if (upload.filename or "").lower().endswith((".tar", ".tgz", ".gz")) else ".zip"
    with tempfile.NamedTemporaryFile(dir=directory, suffix=suffix, delete=False) as out:
        upload.file.seek(0)
        copied = 0
        while chunk := upload.file.read(_COPY_CHUNK):
            copied += len(chunk)
            if copied > limit:
                out.close()
                FilePath(out.name).unlink(missing_ok=True)
                raise TooLarge(f"the archive is over {limit} bytes")
            out.write(chunk)
    return FilePath(out.name)


async def _events(jobs: JobService, first: JobStatus) -> AsyncIterator[str]:
    current = first
    last: dict[str, Any] | None = None
    try:
        while True:
            seen = {"state": current.state, "counts": current.counts}
            if seen != last:
                last = seen
                yield sse("progress", current.model_dump_json())
            if current.state not in UNFINISHED:
                yield sse("result", current.model_dump_json())
                return
            await asyncio.sleep(_EVENT_POLL_S)
            current = await run_in_threadpool(jobs.status, first.id)
    except MmragError as error:
        yield sse("error", json.dumps(problem_body(status_of(error), error.title, error.detail)))
