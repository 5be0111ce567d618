"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from mmrag.api.deps import ServicesDep
from mmrag.api.schemas import Embedding, FixtureBuild, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """The store answers and the embedder is loaded: searches will succeed."""
    checks = await run_in_threadpool(services.readiness)
    tools = await run_in_threadpool(services.tool_readiness)
    ready = all(value == "ok" for value in checks.values())
    builds = {
        name: FixtureBuild(
            state=build.state,
            progress=round(build.progress, 3),
            eta_s=None if build.eta_s is None else round(build.eta_s, 1),
            detail=build.describe(),
        )
        for name, build in services.fixture_builds.states().items()
    }
    serving = services.embedder_serving()
    embedding = None if serving is None else Embedding.model_validate(asdict(serving))
    body = Readiness(
        ready=ready, checks=checks, embedding=embedding, tools=tools, builds=builds
    ).model_dump()
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    # Collecting asks the store for counts: off the event loop.
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
