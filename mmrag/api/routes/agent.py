"""The agent: ``POST /v1/plan`` (the plan only) and ``POST /v1/ask`` (plan, run, answer).

``/v1/ask`` with ``"stream": true`` answers with server-sent events: ``plan``, then
``tool_start``/``tool_end`` per step, ``token`` pieces of the answer text, and a closing
``answer`` event holding the JSON body the plain request gets (or ``error`` with a
problem+json body). Bad input is refused before any stream starts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from mmrag.api.deps import TenantServicesDep
from mmrag.api.events import EVENT_STREAM, sse
from mmrag.api.limits import AskRate
from mmrag.api.openapi import BODY_PROBLEMS, V1_PROBLEMS, event_stream, problems
from mmrag.api.problems import problem_body, status_of
from mmrag.api.schemas import AskBody, AskResponse, PlanBody, PlanResponse
from mmrag.api.security import ANONYMOUS, Caller, CanRead
from mmrag.errors import Forbidden, MmragError
from mmrag.retrieval.tenants import DEFAULT_TENANT

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["agent"], responses=V1_PROBLEMS)
_ASK_PROBLEMS = {**BODY_PROBLEMS, **problems(404, 429)}


@router.post("/plan", response_model=PlanResponse, responses=_ASK_PROBLEMS)
async def plan(
    body: PlanBody, services: TenantServicesDep, key: CanRead, _: AskRate
) -> PlanResponse:
    agent = await run_in_threadpool(services.agent)
    owner = conversation_owner(key)
    found = await run_in_threadpool(
        agent.plan, body.question, body.image_id, body.thread_id, owner, key.tenant
    )
    return PlanResponse.model_validate(found.model_dump())


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={
        200: event_stream(
            "the answer as JSON, or with stream: true a stream of events as the agent works",
            "plan",
            "tool_start",
            "tool_end",
            "token",
            "answer",
        ),
        **_ASK_PROBLEMS,
    },
)
async def ask(
    body: AskBody,
    request: Request,
    services: TenantServicesDep,
    key: CanRead,
    _: AskRate,
) -> Any:
    agent = await run_in_threadpool(services.agent)
    # Threads belong to the API key that started them (when keys are configured).
    owner = conversation_owner(key)
    question, image_id, thread_id = body.question, body.image_id, body.thread_id
    jobs = getattr(request.app.state, "jobs", None)
    if body.confirm:
        # Confirming starts a job: the jobs scope and the tenant's job limit, as POST /v1/jobs.
        if not key.may("jobs"):
            raise Forbidden(f"API key {key.name!r} lacks the 'jobs' scope")
        if jobs is not None:
            await run_in_threadpool(jobs.admit, key.tenant)  # before reading the body
    if not body.stream:
        result = await run_in_threadpool(
            agent.ask, question, image_id, thread_id, owner, key.tenant, body.confirm
        )
        return AskResponse.model_validate(result.model_dump())
    await run_in_threadpool(agent.check, question, image_id, thread_id, key.tenant)
    if body.confirm is not None:
        await run_in_threadpool(agent.check_pending, thread_id, owner, key.tenant)
    events = agent.stream(question, image_id, thread_id, owner, key.tenant, body.confirm)
    return StreamingResponse(
        _event_stream(events),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def conversation_owner(caller: Caller) -> str | None:
    """Who owns the threads a caller starts: none with auth off (as before tenants); a
    default-tenant key by its name (as before); any other key by tenant and name ("/" is in
    neither a key name nor a Slack owner, so no owner can pose as another)."""
    if caller.key_id is None and caller.name == ANONYMOUS.name:
        return None
    if caller.tenant == DEFAULT_TENANT:
        return caller.name
    return f"{caller.tenant}/{caller.name}"


async def _event_stream(events: Iterator[tuple[str, dict[str, Any]]]) -> AsyncIterator[str]:
    # The graph is synchronous: each next() runs in a worker thread.
    try:
        async for event, data in iterate_in_threadpool(events):
            yield sse(event, data)
    except MmragError as error:
        status = status_of(error)
        yield sse("error", problem_body(status, error.title, error.detail))
    except Exception:
        # The status line went out with the first event: the error can only be an event.
        log.exception("the agent failed while streaming")
        yield sse("error", problem_body(500, "Internal error", "the server failed; it was logged"))
