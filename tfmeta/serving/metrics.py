"""Prometheus metrics of a server: request counts, latency histograms, loaded versions.

Served at `/monitoring/prometheus/metrics` (TF Serving's path) in Prometheus' text format by
`prometheus_client`, from a registry of the server's own (so two servers in one process, as in
tests, count apart). Counters are labelled by model, API (`rest` or `grpc`), method
(`predict`, `metadata`, `status`) and status (HTTP status or gRPC code name); rejections before
routing (413 body too large, 408 slow body, 503 queue full) are counted by reason.

Example:

>>> metrics = ServingMetrics()
>>> metrics.observe("digits", "rest", "predict", "200", 0.004)
>>> b'tfmeta_serving_requests_total{api="rest"' in metrics.render()
True
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
METRICS_PATH = "/monitoring/prometheus/metrics"
# From 0.5 ms to 30 s: single rows on a CPU up to a large batch behind a full queue.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServingMetrics:
    """The counters and histograms of one server, in their own registry."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tfmeta_serving_requests", "Requests answered, by model, API, method and status.",
            ["model_name", "api", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "tfmeta_serving_request_latency_seconds", "Time from a request's arrival to its answer.",
            ["model_name", "api", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.rejected = Counter(
            "tfmeta_serving_rejected_requests", "Requests refused before they ran, by reason.",
            ["reason"], registry=self.registry,
        )
        self.in_flight = Gauge(
            "tfmeta_serving_in_flight_requests", "REST requests running now.", registry=self.registry
        )
        self.queued = Gauge(
            "tfmeta_serving_queued_requests", "REST requests waiting for a slot.", registry=self.registry
        )

    def observe(self, model: str, api: str, method: str, status: str, seconds: float) -> None:
        """Counts one answered request and records its latency."""
        self.requests.labels(model, api, method, status).inc()
        self.latency.labels(model, api, method).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return prometheus_client.generate_latest(self.registry)
