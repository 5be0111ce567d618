"""The app factory: ``create_app(settings)`` builds the API; the lifespan opens the services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from mmrag import __version__
from mmrag.api import openapi, problems
from mmrag.api.audit import Audit
from mmrag.api.body_limit import BodySizeLimit
from mmrag.api.json_body_guard import JsonBounds
from mmrag.api.limits import Limits
from mmrag.api.metrics import Metrics
from mmrag.api.routes import admin, agent, health, images, jobs, search, slack, tools, web
from mmrag.api.security_headers import SecurityHeaders
from mmrag.config import Settings
from mmrag.errors import MmragError
from mmrag.retrieval.samples import seed_sample_gallery
from mmrag.services import Services
from mmrag.slack.runtime import SlackRuntime
from mmrag.tenancy.keys import KeyStore
from mmrag.workers.jobs.service import JobService

log = logging.getLogger(__name__)


def _prepare_search(services: Services) -> None:
    """Load the embedder before the first search, then index the sample gallery. A model that
    cannot load does not stop the server: /readyz and every search then answer 503 with the
    reason."""
    try:
        # Another embedder configured than the collection's: served meanwhile, swapped after.
        services.swap_embedder_in_background()
        services.embedder()
    except MmragError as error:
        log.error("the embedder is not available: %s", error.detail)
        return
    if services.settings.samples.enabled:
        seed_sample_gallery(
            services.settings.data_dir, services.settings.samples.shapes, services.ingest
        )


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside even Starlette's ServerErrorMiddleware (which add_middleware cannot reach),
        # so every response carries the security headers, a 500 included.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(Services.open, settings)
        app.state.services = services
        metrics.watch(services)
        try:
            # On a fresh machine the fixture models train in the background: the server
            # answers at once, /readyz says what is building, tools answer 503 meanwhile.
            if not services.build_missing_fixtures(lambda: _prepare_search(services)):
                await run_in_threadpool(_prepare_search, services)
            services.start_background()
            # Jobs resume at start-up: the driver takes up whatever was left unfinished.
            app.state.jobs = job_service = await run_in_threadpool(JobService.open, services)
            job_service.start()
            services.job_starter = job_service.submit_for_agent
            app.state.slack = slack_runtime = await run_in_threadpool(
                SlackRuntime.open, services, job_service
            )
            try:
                yield
            finally:
                app.state.keys.close()
                if slack_runtime is not None:
                    await run_in_threadpool(slack_runtime.close)
                await run_in_threadpool(job_service.close)
        finally:
            await run_in_threadpool(services.close)

    app = _App(
        title="mmrag",
        version=__version__,
        summary="Search and question your images",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    # Read on every request (api/security.py): a key revoked by `mmrag keys` in another
    # process is refused at once.
    app.state.keys = KeyStore.in_data_dir(settings.data_dir)
    app.state.limits = Limits(settings.tenancy, app.state.keys)
    problems.install(app)
    openapi.install(app, settings)
    # Innermost, so the HTTPException it raises from receive() reaches FastAPI's body
    # parsing directly and not through the metrics middleware's task group.
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_request_bytes)
    # Outside the size cap: it answers its own problems and reads at most max_json_bytes.
    app.add_middleware(JsonBounds, limits=settings.limits)
    metrics.install(app)
    # Outermost of these: it sees every status, the JSON bounds' and the size cap's included.
    app.add_middleware(Audit)
    app.include_router(health.router)
    app.include_router(images.router)
    app.include_router(search.router)
    app.include_router(tools.router)
    app.include_router(agent.router)
    app.include_router(jobs.router)
    app.include_router(slack.router)
    app.include_router(admin.router)
    web.install(app)
    return app
