"""``/slack/*``: Slack's requests handed to the Bolt app (events, slash commands,
interactivity, the OAuth install flow). Left out of the OpenAPI document: Slack, not API
clients, calls them, with its own signed protocol."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from slack_bolt import BoltRequest, BoltResponse
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
    body = await request.body()
    return BoltRequest(
        body=body.decode("utf-8", errors="replace"),
        query=str(request.url.query),
        headers={name: [value] for name, value in request.headers.items()},
    )


def _response(answer: BoltResponse) -> Response:
    headers = {
        name: values[0]
        for name, values in answer.headers.items()
        if values and name.lower() not in ("content-length", "set-cookie")
    }
    response = Response(answer.body, status_code=answer.status, headers=headers)
    for cookie in answer.cookies():
        for name, morsel in cookie.items():
            response.set_cookie(name, morsel.value, max_age=600, secure=True, httponly=True)
    return response


@router.post("/events")
async def events(request: Request) -> Response:
    runtime = _runtime(request)
    # Bolt is synchronous: its dispatch (verification, ack) runs off the event loop.
    answer = await run_in_threadpool(runtime.app.dispatch, await _bolt_request(request))
    return _response(answer)


@router.get("/install")
async def install(request: Request) -> Response:
    flow = _runtime(request).app.oauth_flow
    if flow is None:
        raise NotFound("this bot serves one workspace: there is nothing to install")
    return _response(
        await run_in_threadpool(flow.handle_installation, await _bolt_request(request))
    )


@router.get("/oauth_redirect")
async def oauth_redirect(request: Request) -> Response:
    flow = _runtime(request).app.oauth_flow
    if flow is None:
        raise NotFound("this bot serves one workspace: there is nothing to install")
    return _response(await run_in_threadpool(flow.handle_callback, await _bolt_request(request)))
