"""Prometheus metrics of one app instance, in a registry of its own (never the global one).

A fresh :class:`Metrics` per app keeps tests independent and lets two apps share a process.
"""

from __future__ import annotations

import time
from typing import Final, Literal, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logs import route_template
from model.vlm.base import VLMBadRequest, VLMError, VLMTimeout, VLMUnavailable

Stage = Literal["decode", "embed", "search", "prompt", "vlm"]
STAGES: Final[tuple[Stage, ...]] = get_args(Stage)
VLM_ERROR_KINDS: Final = tuple(
    error.kind for error in (VLMUnavailable, VLMTimeout, VLMBadRequest, VLMError)
)
# Anything else a client invents is folded into one label value to bound cardinality.
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Captions take seconds and may run up to the VLM timeout (120 s by default).
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_STAGE_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)


class Metrics:
    """Request, pipeline-stage, VLM-error and index metrics, rendered in text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "repic_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "repic_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "repic_stage_seconds",
            "Time spent in each stage of the caption pipeline.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.vlm_errors = Counter(
            "repic_vlm_errors",
            "Failed VLM calls by kind (unavailable, timeout, bad_request, error).",
            ["kind"],
            registry=self.registry,
        )
        self.index_vectors = Gauge(
            "repic_index_vectors",
            "Vectors held in the FAISS indexes loaded in this process.",
            registry=self.registry,
        )
        self.index_loaded_users = Gauge(
            "repic_index_loaded_users",
            "Per-user FAISS indexes loaded in this process.",
            registry=self.registry,
        )
        self.index_cache_bytes = Gauge(
            "repic_index_cache_bytes",
            "Bytes held by the per-user indexes loaded in this process (capped by "
            "REPIC_INDEX__CACHE_MAX_BYTES).",
            registry=self.registry,
        )
        self.index_evictions = Counter(
            "repic_index_evictions",
            "Per-user indexes dropped from memory to stay under the cache cap.",
            registry=self.registry,
        )
        self._evictions_seen = 0
        # Series that exist from the start read 0 instead of missing in dashboards and alerts.
        for stage in STAGES:
            self.stage_seconds.labels(stage=stage)
        for kind in VLM_ERROR_KINDS:
            self.vlm_errors.labels(kind=kind)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else "OTHER"
        self.http_requests.labels(route=route, method=method, status=str(status)).inc()
        self.http_latency.labels(route=route, method=method).observe(seconds)

    def observe_stage(self, stage: Stage, seconds: float) -> None:
        self.stage_seconds.labels(stage=stage).observe(seconds)

    def count_vlm_error(self, kind: str) -> None:
        self.vlm_errors.labels(kind=kind).inc()

    def set_index_size(self, vectors: int, loaded_users: int) -> None:
        self.index_vectors.set(vectors)
        self.index_loaded_users.set(loaded_users)

    def observe_index(
        self, *, vectors: int, loaded_users: int, bytes_held: int, evictions: int
    ) -> None:
        """Publish the index cache's state; ``evictions`` is the cumulative count."""
        self.set_index_size(vectors, loaded_users)
        self.index_cache_bytes.set(bytes_held)
        if evictions > self._evictions_seen:
            self.index_evictions.inc(evictions - self._evictions_seen)
            self._evictions_seen = evictions

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for a ``GET /metrics`` response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Count and time every HTTP request under its route template (``unmatched`` if none)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            self.metrics.observe_request(
                route_template(scope), scope["method"], status, time.perf_counter() - started
            )
