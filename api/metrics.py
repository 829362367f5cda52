"""The API's Prometheus metrics (``/metrics``, api/health.py): request counts and
latencies, jobs created per model, the depth of each Celery queue read from Redis at
scrape time, and what the workers recorded there (shared/stores/telemetry.py).

Metrics live in a registry per app (several apps in one test process must not clash).
Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder
before the workers start: counters are then summed across workers at scrape time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from shared.errors import Unavailable
from shared.stores import telemetry
from shared.stores.monitor import Monitor

log = logging.getLogger("cutout.api")

#: the workers' counters (shared/stores/telemetry.py): (stats key, metric, help, labels); a key
#: with two labels is ``first|second``
WORKER_COUNTERS = (
    ("jobs", "cutout_jobs_finished", "Jobs finished by model and status", ("model", "status")),
    ("webhooks", "cutout_webhook_deliveries", "Webhook attempts by event and outcome",
     ("event", "outcome")),
    ("errors", "cutout_job_errors", "Failed jobs by model and error code", ("model", "code")),
    ("retries", "cutout_job_retries",
     "Job runs tried again, by reason (a transient error code, or worker_lost)", ("reason",)),
    ("corrections", "cutout_corrections",
     "Corrected masks' re-renders (PUT /v1/jobs/{id}/mask) by outcome", ("outcome",)),
)  # fmt: skip


def _cause(exc: Unavailable) -> str:
    # the redis-py error's class name, as these warnings always said
    cause = exc.__cause__
    return type(cause if cause is not None else exc).__name__


class QueueDepthCollector(Collector):
    """``cutout_queue_depth{queue}``: tasks waiting in each Celery queue (LLEN at scrape)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "cutout_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"]
        )
        try:
            depths = self.monitor.queue_depths()
        except Unavailable as exc:
            log.warning("queue depth unavailable: %s", _cause(exc))
            return
        for queue, depth in depths.items():
            family.add_metric([queue], float(depth))
        yield family

    def describe(self) -> Iterator[Metric]:
        # no Redis round trip at registration time
        return iter(())


class WorkerStatsCollector(Collector):
    """What workers recorded in Redis (shared/stores/telemetry.py), read at scrape time."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.monitor.worker_stats()
            alive = self.monitor.workers()
        except Unavailable as exc:
            log.warning("worker stats unavailable: %s", _cause(exc))
            return
        for key, name, text, labels in WORKER_COUNTERS:
            yield _counter(name, text, labels, stats.get(key, {}))
        yield _stages(stats["stages"])
        workers = GaugeMetricFamily("cutout_workers_alive", "Worker processes with a heartbeat")
        workers.add_metric([], float(len(alive)))
        yield workers
        yield _worker_memory(alive)

    def describe(self) -> Iterator[Metric]:
        return iter(())


def _counter(
    name: str, text: str, labels: tuple[str, ...], values: dict[str, float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=list(labels))
    for key, value in sorted(values.items()):
        first, _, second = key.partition("|")
        family.add_metric([first, second] if len(labels) == 2 else [key], value)
    return family


def _stages(stages: dict[str, float]) -> HistogramMetricFamily:
    """``cutout_stage_seconds``: the workers' cumulative buckets (``stage|bound``)."""
    family = HistogramMetricFamily(
        "cutout_stage_seconds", "Worker time per processing stage", labels=["stage"]
    )
    for stage in sorted({key.partition("|")[0] for key in stages}):
        buckets = [
            (str(bound), stages.get(f"{stage}|{bound}", 0.0)) for bound in telemetry.STAGE_BUCKETS
        ]
        buckets.append(("+Inf", stages.get(f"{stage}|+Inf", 0.0)))
        family.add_metric([stage], buckets, stages.get(f"{stage}|sum", 0.0))
    return family


def _worker_memory(alive: list[dict[str, Any]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "cutout_worker_rss_bytes",
        "Resident memory of each worker process",
        labels=["worker", "device", "provider"],
    )
    for worker in alive:
        provider = (worker.get("providers") or ["none"])[0]
        family.add_metric(
            [worker["id"], worker.get("device", "cpu"), provider],
            float(worker.get("rss_bytes") or 0),
        )
    return family


class Metrics:
    """The app's Prometheus metrics."""

    def __init__(self, monitor: Monitor) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cutout_http_requests",
            "HTTP requests by route, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cutout_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.jobs_created = Counter(
            "cutout_jobs_created",
            "Jobs created by model and queue",
            ["model", "queue"],
            registry=self.registry,
        )
        self.queue_depth = QueueDepthCollector(monitor)
        self.registry.register(self.queue_depth)
        self.worker_stats = WorkerStatsCollector(monitor)
        self.registry.register(self.worker_stats)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def job_created(self, record: dict[str, Any]) -> None:
        model = (record.get("options") or {}).get("model", "unknown")
        self.jobs_created.labels(model, record.get("queue") or "interactive").inc()

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(self.queue_depth)
            registry.register(self.worker_stats)
            return generate_latest(registry)
        return generate_latest(self.registry)
