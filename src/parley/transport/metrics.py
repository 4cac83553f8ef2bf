"""Prometheus metrics of SPEC §1, in a registry of our own (not the process-global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

disable_created_metrics()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge("parley_connections", "Open RTM connections", ["side"], registry=self.registry)
        self.requests = Counter(
            "parley_requests", "Requests handled", ["side", "action", "outcome"], registry=self.registry
        )
        self.events_stored = Counter("parley_events_stored", "Events stored", registry=self.registry)
        self.push_latency = Histogram(
            "parley_push_latency_seconds",
            "From the request that caused a push to its write on a socket",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        for side in ("customer", "agent"):
            self.connections.labels(side)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
