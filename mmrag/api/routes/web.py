"""The web page: ``/`` serves it, ``/web/*`` its static files, ``/web/config.json`` what the
page needs to know before it calls the API (limits, whether a key is needed, what the
presented key may do).

The page is plain files (HTML, CSS, ES modules) in ``mmrag/api/web``: nothing to build. It
calls the same REST API as every other client, from the same origin.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from mmrag import __version__
from mmrag.api.deps import SettingsDep
from mmrag.api.openapi import problems
from mmrag.api.security import auth_enabled, identify

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
# The page's files change with the code, not with their URL: revalidate (ETag) every load.
_REVALIDATE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["web"])


class WebLimits(BaseModel):
    max_image_bytes: int = Field(description="largest image file the API accepts")
    max_upload_files: int = Field(description="most files in one upload request")
    max_request_bytes: int = Field(description="largest request body (archives included)")
    max_question_chars: int
    search_max_limit: int


class WebKey(BaseModel):
    name: str
    scopes: list[str]


class WebConfig(BaseModel):
    version: str
    auth_required: bool = Field(description="every /v1 route needs an API key")
    key: WebKey | None = Field(
        None, description="the presented key, when auth is on and the request carried one"
    )
    limits: WebLimits


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers=_REVALIDATE)


@router.get(
    "/web/config.json",
    response_model=WebConfig,
    responses=problems(401),
)
async def web_config(request: Request, settings: SettingsDep) -> WebConfig:
    """What the web page needs before it calls the API. With a key presented it also says
    the key's scopes, so the page can disable what the key may not do (an unknown key: 401)."""
    # The key headers are read here, not declared as parameters: optional text cannot fail
    # validation, and declared ones would put a 422 the route never sends in the document.
    headers = request.headers
    keys = request.app.state.keys
    key = identify(settings, keys, headers.get("authorization"), headers.get("x-api-key"))
    limits = settings.limits
    return WebConfig(
        version=__version__,
        auth_required=auth_enabled(settings, keys),
        key=None if key is None else WebKey(name=key.name, scopes=sorted(key.scopes)),
        limits=WebLimits(
            max_image_bytes=limits.max_image_bytes,
            max_upload_files=limits.max_upload_files,
            max_request_bytes=limits.max_request_bytes,
            max_question_chars=settings.agent.max_question_chars,
            search_max_limit=limits.search_max_limit,
        ),
    )


class _PageFiles(StaticFiles):
    """The page's static files, revalidated on every load."""

    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_REVALIDATE)
        return response


def install(app: FastAPI) -> None:
    """The routes, then the static files (a mount answers every path under it, so the
    config route goes first)."""
    app.include_router(router)
    app.mount("/web", _PageFiles(directory=WEB_DIR), name="web")
