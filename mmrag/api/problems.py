"""Errors as RFC 9457 ``application/problem+json``. The only place that knows HTTP codes."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mmrag import errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Most specific first: the first class an error is an instance of decides its status.
STATUS: list[tuple[type[errors.MmragError], int]] = [
    (errors.UnknownModel, 400),
    (errors.UnsupportedMedia, 415),
    (errors.TooLarge, 413),
    (errors.InvalidInput, 422),
    (errors.ForbiddenSource, 403),
    (errors.SourceUnreachable, 502),
    (errors.NotFound, 404),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.InsufficientStorage, 507),
    (errors.Unavailable, 503),
    (errors.RateLimited, 429),
]


def status_of(error: errors.MmragError) -> int:
    return next((status for kind, status in STATUS if isinstance(error, kind)), 500)


def problem_body(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    slug = title.lower().replace(" ", "-")
    body = {"type": f"https://mmrag.dev/problems/{slug}", "title": title, "status": status}
    body["detail"] = detail
    body.update(extra)
    return body


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = problem_body(status, title, detail, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _domain_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.MmragError)
    status = status_of(error)
    headers = None
    if isinstance(error, errors.Unavailable | errors.RateLimited):
        headers = {"Retry-After": str(error.retry_after_s)}
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return problem(status, error.title, error.detail, headers)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    issues = [
        {"loc": list(issue.get("loc", ())), "msg": issue.get("msg", ""), "type": issue.get("type")}
        for issue in error.errors()
    ]
    first = issues[0] if issues else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return problem(422, "Invalid input", f"{where}: {first['msg']}", errors=issues)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed", 413: "Too large"}.get(
        error.status_code, "HTTP error"
    )
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
    return problem(error.status_code, title, str(error.detail), headers)


def _allowed_methods(request: Request, named: str) -> str:
    """Every method the API takes at this path. Starlette names only the first matching
    route's (``named``), and one path can have several routes (an image: GET and DELETE);
    the OpenAPI document knows them all. Paths it leaves out keep Starlette's answer."""
    path = request.url.path
    for template, operations in request.app.openapi()["paths"].items():
        parts = template.split("/")
        pattern = "/".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        if re.fullmatch(pattern, path):
            return ", ".join(sorted(method.upper() for method in operations))
    return named


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Internal error", "the server failed; the error was logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.MmragError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
