"""What the server exposes about itself: Prometheus metrics and one access-log line per request.

Problem: a server under load is a black box unless it says how many requests it answered with
which status, how long they took, how full its batches and queues are.
Idea: prometheus_client metrics in a registry owned by one app (no process-wide state: two
servers in one process, as in the tests, count separately), served at `/metrics` in the text
format Prometheus scrapes; and a logger `deepstrata.serving.access` writing one line per
request (client, method, path, status, milliseconds, model).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ACCESS_LOG = logging.getLogger("deepstrata.serving.access")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("deepstrata_requests", "Requests answered, by model and HTTP status.", ["model", "status"], registry=self.registry)
        self.latency = Histogram("deepstrata_request_duration_seconds", "Time from request to response, by model.", ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("deepstrata_batch_size", "Rows in each forward pass, by model.", ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("deepstrata_batch_requests", "Requests merged into each forward pass, by model.", ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.inference = Histogram("deepstrata_inference_seconds", "Time of each forward pass, by model.", ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("deepstrata_queue_depth", "Requests waiting for a forward pass, by model.", ["model"], registry=self.registry)

    def batch(self, model: str, rows: int, requests: int, seconds: float) -> None:
        self.batch_size.labels(model=model).observe(rows)
        self.batch_requests.labels(model=model).observe(requests)
        self.inference.labels(model=model).observe(seconds)

    def observe(self, model: str, status: int, seconds: float) -> None:
        self.requests.labels(model=model, status=str(status)).inc()
        if model:
            self.latency.labels(model=model).observe(seconds)
