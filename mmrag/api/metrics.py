"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mmrag.errors import MmragError
from mmrag.retrieval.items import IngestReport
from mmrag.services import Services


class _StoreCollector(Collector):
    """Reads the store's counts at scrape time instead of tracking them on every write."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mmrag_store_up", "1 when the vector store answers")
        try:
            info = self._services.store.info()
        except MmragError:
            # The rest of the metrics still matter most when the store is down.
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        points = GaugeMetricFamily("mmrag_indexed_images", "Images in the vector store")
        points.add_metric([], info.points)
        yield points
        indexed = GaugeMetricFamily(
            "mmrag_hnsw_indexed_vectors", "Vectors covered by an HNSW graph"
        )
        indexed.add_metric([], info.indexed_vectors)
        yield indexed


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mmrag_http_requests",
            "HTTP requests by route, method, status and the caller's tenant",
            ["route", "method", "status", "tenant"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mmrag_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
        )
        self.ingested = Counter(
            "mmrag_ingested_images",
            "Images through ingest by outcome and tenant",
            ["outcome", "tenant"],
            registry=self.registry,
        )

    def count_ingest(self, report: IngestReport, tenant: str) -> None:
        for outcome, items in (
            ("indexed", report.indexed),
            ("duplicate", report.duplicates),
            ("failed", report.failed),
        ):
            self.ingested.labels(outcome, tenant).inc(len(items))

    def watch(self, services: Services) -> None:
        self.registry.register(_StoreCollector(services))

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def observe(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            started = time.perf_counter()
            response = await call_next(request)
            # The route template, not the path: ids must not explode the label set.
            route = getattr(request.scope.get("route"), "path", "unmatched")
            # The tenant of a known key ("-" before one is known: refused, or no /v1 route).
            # Tenants come from the key store, so the label set stays as small as it is.
            caller = getattr(request.state, "caller", None)
            tenant = getattr(caller, "tenant", "-")
            self.requests.labels(route, request.method, str(response.status_code), tenant).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)
            return response
