"""Prometheus metrics of the gateway (``GET /metrics``), in a registry per app: requests and
``POST /recommend`` stages as they happen, and ingest figures read from the catalog and the
broker when Prometheus scrapes (images per state, queue depths, indexing pace, failures)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.db import IngestProgress

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lookalike_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lookalike_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "lookalike_recommend_stage_seconds",
            "Time per stage of POST /recommend (download, decode, detect, embed, search, ...).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.groups = Counter(
            "lookalike_recommend_groups",
            "Garment groups answered by POST /recommend.",
            registry=self.registry,
        )

    def watch_ingest(
        self,
        progress: Callable[[], IngestProgress],
        depths: Callable[[], dict[str, int | None]],
    ) -> None:
        """Report ingest at every scrape from these two readers (the catalog, the broker)."""
        self.registry.register(IngestCollector(progress, depths))

    def observe_request(self, scope: Any, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        method = str(scope.get("method", ""))
        self.requests.labels(method, path, str(status)).inc()
        self.latency.labels(method, path).observe(seconds)

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stages.labels(stage).observe(ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class IngestCollector(Collector):
    """Ingest figures, read when scraped: the catalog is the source of truth for them."""

    def __init__(
        self,
        progress: Callable[[], IngestProgress],
        depths: Callable[[], dict[str, int | None]],
    ) -> None:
        self.progress = progress
        self.depths = depths

    def collect(self) -> Iterator[Metric]:
        progress = self.progress()
        images = GaugeMetricFamily(
            "lookalike_ingest_images", "Active catalog images per ingest state.", labels=["state"]
        )
        for state, count in progress.images.items():
            images.add_metric([state.value], count)
        yield images
        failures = GaugeMetricFamily(
            "lookalike_ingest_failed_images",
            "Failed images per reason (the most common reasons, URLs folded).",
            labels=["reason"],
        )
        for reason, count in progress.failure_reasons.items():
            failures.add_metric([reason[:200]], count)
        yield failures
        yield GaugeMetricFamily(
            "lookalike_ingest_indexed_per_second",
            "Images indexed per second over the last minute.",
            value=progress.indexed_last_minute / 60,
        )
        last = progress.last_processed_at
        if last is not None:
            yield GaugeMetricFamily(
                "lookalike_ingest_last_processed_timestamp_seconds",
                "When an image last became done or failed (Unix time).",
                value=last.timestamp(),
            )
        queues = GaugeMetricFamily(
            "lookalike_queue_depth",
            "Messages waiting per broker queue (absent when the broker does not answer).",
            labels=["queue"],
        )
        for name, depth in self.depths().items():
            if depth is not None:
                queues.add_metric([name], depth)
        yield queues
