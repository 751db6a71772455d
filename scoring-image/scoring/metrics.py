"""Prometheus metrics. With several workers, prometheus-client's multiprocess mode aggregates them.

Import this module only after ``PROMETHEUS_MULTIPROC_DIR`` is settled (the supervisor sets it before
starting workers): prometheus-client picks its value store at import time.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        r = self.registry
        self.requests = Counter(
            "scoring_requests", "HTTP requests answered, by route and status code.", ["route", "status"], registry=r
        )
        self.errors = Counter(
            "scoring_request_errors",
            "Scoring requests answered with an error, by route and kind (client or server).",
            ["route", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "scoring_request_duration_seconds",
            "Time from the first byte of a request to its response being written, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("scoring_rows", "Input rows scored.", registry=r)
        self.batch_rows = Histogram(
            "scoring_batch_rows", "Rows per model predict call (micro-batch size).", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "scoring_batch_requests",
            "Requests merged into one model predict call.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.predict_seconds = Histogram(
            "scoring_predict_duration_seconds",
            "Time spent in one model predict call.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "scoring_model_ready", "1 once the model is loaded and warmed up.", registry=r, multiprocess_mode="livemin"
        )
        self._latency_children: dict[str, object] = {}
        self._request_children: dict[tuple[str, int], object] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        child = self._request_children.get((route, status))
        if child is None:
            child = self._request_children[(route, status)] = self.requests.labels(route, str(status))
        child.inc()  # type: ignore[attr-defined]
        lat = self._latency_children.get(route)
        if lat is None:
            lat = self._latency_children[route] = self.latency.labels(route)
        lat.observe(seconds)  # type: ignore[attr-defined]
        if status >= 400 and route in ("/invocations", "/predict"):
            self.errors.labels(route, "server" if status >= 500 else "client").inc()

    def observe_batch(self, rows: int, requests: int, seconds: float) -> None:
        self.rows.inc(rows)
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)
        self.predict_seconds.observe(seconds)

    def render(self) -> bytes:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
