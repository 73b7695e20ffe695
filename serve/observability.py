"""Prometheus metrics of the service, on a registry of the app's own (tests create many apps)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry):
        self.latency = Histogram(
            "binsight_request_seconds", "HTTP request latency", ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=registry
        )
        self.inference = Histogram("binsight_inference_seconds", "Model inference time per image", buckets=LATENCY_BUCKETS, registry=registry)
        self.verdicts = Counter("binsight_verdicts_total", "Inspections stored, by verdict", ["verdict", "fraction"], registry=registry)
        self.errors = Counter("binsight_errors_total", "Requests refused or failed, by error code", ["code"], registry=registry)


class RequestTimer:
    """Pure ASGI middleware timing each request by method, route template and status.

    (Starlette's BaseHTTPMiddleware costs about a millisecond per request on
    this hardware; the whole budget for the service's own work is a few.)
    """

    def __init__(self, app, histogram: Histogram):
        self.app, self.histogram = app, histogram

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            self.histogram.labels(scope["method"], getattr(route, "path", "unmatched"), str(status["code"])).observe(
                time.perf_counter() - started
            )
