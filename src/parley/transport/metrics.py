"""Prometheus metrics of SPEC §1, in a registry of our own (not the process-global one).

The hot path only adds to plain integers and lists; prometheus_client turns them into families
when `/metrics` is scraped (a custom collector). Its own Counter and Histogram take a lock on
every increment, which cost more per `send_event` than validating the request does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

PUSH_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class LatencyHistogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class Metrics:
    def __init__(self) -> None:
        self.connections: Counter[str] = Counter({"customer": 0, "agent": 0})
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.events_stored = 0
        self.push_latency = LatencyHistogram(PUSH_LATENCY_BUCKETS)
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def count_events(self, n: int) -> None:
        self.events_stored += n

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("parley_connections", "Open RTM connections", labels=["side"])
        for side, n in sorted(self.connections.items()):
            gauge.add_metric([side], n)
        yield gauge
        requests = CounterMetricFamily("parley_requests", "Requests handled", labels=["side", "action", "outcome"])
        for labels, n in sorted(self.requests.items()):
            requests.add_metric(list(labels), n)
        yield requests
        yield CounterMetricFamily("parley_events_stored", "Events stored", value=self.events_stored)
        hist = HistogramMetricFamily(
            "parley_push_latency_seconds", "From the request that caused a push to its write on a socket"
        )
        hist.add_metric([], self.push_latency.cumulative(), sum_value=self.push_latency.sum)
        yield hist

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
