"""Request counts and latencies in the Prometheus text format (``prometheus_client``), for ``GET /metrics``.

Every request is counted by method, route template (``/train/{job_id}``, not the path, so label values stay
few; a path that matches no route counts as ``<unmatched>``) and status, and timed by method and route.

With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before the workers start
(``fitness-weights serve --workers N`` does): each worker then writes its figures there and ``GET /metrics``,
whichever worker answers it, reports the sum over all of them. Without it each worker reports its own.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROC_ENV", "MetricsMiddleware", "RequestMetrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"

# Latency buckets (seconds): predict answers in about a millisecond, optimize in tens, a cancel in seconds.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RequestMetrics:
    """The service's request counter and latency histogram, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fitness_weights_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fitness_weights_http_request_duration_seconds",
            "Time from receiving a request to sending the end of its response, by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        """The figures in the Prometheus text format: every worker's when ``PROMETHEUS_MULTIPROC_DIR`` is set."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """An ASGI middleware that feeds :class:`RequestMetrics` (plain ASGI: no per-request task or buffering)."""

    def __init__(self, app: Any, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on; record its route, status and latency when the response is sent."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app fails before it starts a response

        async def send_and_record(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)
