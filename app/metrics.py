"""Prometheus metrics of the API process (`GET /metrics`), with prometheus-client.

Requests are counted and timed per route template (`/jobs/{job_id}`, never the id itself), method
and status by an ASGI middleware; the job queue's depth, the store's size in bytes and the jobs
that finished in this process (embedded mode: their duration and outcome) are read when the
metrics are scraped; the model's load time is set once at start-up. Each app has its own
registry, so several apps in one process (the tests) do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "faceedit_http_requests", "HTTP requests answered", ("route", "method", "status"), registry=self.registry
        )
        self.latency = Histogram(
            "faceedit_http_request_duration_seconds",
            "Time from the request's start to the end of its answer",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.jobs = Histogram(
            "faceedit_job_duration_seconds",
            "Optimised-edit jobs run in this process, from submission to their end, by outcome",
            ("outcome",),
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "faceedit_rate_limited",
            "Requests refused (429) because their client was over its share, by route class",
            ("route_class",),
            registry=self.registry,
        )
        self.model_load = Gauge("faceedit_model_load_seconds", "Time to load the checkpoint", registry=self.registry)
        self._state: _State | None = None
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU seconds, open fds

    def watch(self, app_state: Any) -> None:
        """Read the queue and the store of this app at each scrape."""
        if self._state is None:
            self._state = _State(app_state)
            self.registry.register(self._state)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _State(Collector):
    def __init__(self, app_state: Any) -> None:
        self.app_state = app_state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        service = getattr(self.app_state, "service", None)
        if service is None:
            return
        depth = service.queue_depth()  # None when the queue cannot be asked (Redis down): left out
        if depth is not None:
            yield GaugeMetricFamily("faceedit_job_queue_depth", "Jobs waiting (and, embedded, running)", value=depth)
        size = service.store_bytes()
        if size is not None:
            yield GaugeMetricFamily("faceedit_store_bytes", "Bytes of keys and values held", value=float(size))
        memory = service.memory
        if memory.limit_bytes is not None:
            yield GaugeMetricFamily(
                "faceedit_memory_limit_bytes",
                "The process's memory limit (set, or the container's)",
                value=memory.limit_bytes,
            )
        caps = GaugeMetricFamily("faceedit_memory_cap_bytes", "Memory caps derived from the limit", labels=["part"])
        used = GaugeMetricFamily("faceedit_memory_used_bytes", "What each capped part holds now", labels=["part"])
        budget, cache = service.faces.budget, service.faces.cache
        for part, cap, now in (
            ("photos", memory.photo_bytes, budget.in_use),
            ("face_cache", memory.face_cache_bytes, cache.size),
            ("store", memory.store_bytes if size is not None else None, size),
        ):
            if cap is not None and now is not None:
                caps.add_metric([part], cap)
                used.add_metric([part], now)
        yield caps
        yield used


class RequestMetrics:
    """ASGI middleware: one count and one latency observation per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"  # the template: ids never become labels
            method = scope.get("method", "")
            self.metrics.requests.labels(name, method, str(status)).inc()
            self.metrics.latency.labels(name, method).observe(time.perf_counter() - start)
