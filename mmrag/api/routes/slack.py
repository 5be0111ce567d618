"""``/slack/*``: Slack's requests handed to the Bolt app (events, slash commands,
interactivity, the OAuth install flow). Left out of the OpenAPI document: Slack, not API
clients, calls them, with its own signed protocol."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from slack_bolt import BoltRequest
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool

from mmrag.errors import NotFound
from mmrag.slack.runtime import SlackRuntime

router = APIRouter(prefix="/slack", include_in_schema=False)


def _runtime(request: Request) -> SlackRuntime:
    runtime: SlackRuntime | None = getattr(request.app.state, "slack", None)
    if runtime is None:
        raise NotFound("the Slack bot is not configured (MMRAG_SLACK__SIGNING_SECRET)")
    return runtime


async def _bolt_request(request: Request) -> BoltRequest:
    return to_bolt_request(request, await request.body())


@router.post("/events")
async def events(request: Request) -> Response:
    runtime = _runtime(request)
    # Bolt is synchronous: its dispatch (verification, ack) runs off the event loop.
    answer = await run_in_threadpool(runtime.app.dispatch, await _bolt_request(request))
    return to_starlette_response(answer)


@router.get("/install")
async def install(request: Request) -> Response:
    return await _oauth(request, "install")


@router.get("/oauth_redirect")
async def oauth_redirect(request: Request) -> Response:
    return await _oauth(request, "callback")


async def _oauth(request: Request, step: Literal["install", "callback"]) -> Response:
    flow = _runtime(request).app.oauth_flow
    if flow is None:
        raise NotFound("this bot serves one workspace: there is nothing to install")
    handle = flow.handle_installation if step == "install" else flow.handle_callback
    return to_starlette_response(await run_in_threadpool(handle, await _bolt_request(request)))
