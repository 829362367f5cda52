"""Liveness, readiness and Prometheus metrics.

``/healthz`` says the process answers; ``/readyz`` that Redis and object storage are
reachable (503 naming what is not, so a load balancer stops sending work); ``/metrics``
exposes request counts and latencies, jobs created per model, and the depth of each
Celery queue read from Redis at scrape time.

Metrics live in a registry per app (several apps in one test process must not clash).
Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder
before the workers start: counters are then summed across workers at scrape time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from api import trust
from api.errors import problem_response
from api.openapi import doc
from api.services import current
from shared import telemetry
from shared.errors import Unavailable
from shared.monitor import Monitor

log = logging.getLogger("cutout.api")

bp = Blueprint("health", __name__)


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
    """What workers recorded in Redis (shared/telemetry.py), read at scrape time."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.monitor.worker_stats()
            alive = self.monitor.workers()
        except Unavailable as exc:
            log.warning("worker stats unavailable: %s", _cause(exc))
            return
        jobs = CounterMetricFamily(
            "cutout_jobs_finished", "Jobs finished by model and status", labels=["model", "status"]
        )
        for key, value in sorted(stats["jobs"].items()):
            model, _, status = key.partition("|")
            jobs.add_metric([model, status], value)
        yield jobs
        hooks = CounterMetricFamily(
            "cutout_webhook_deliveries",
            "Webhook attempts by event and outcome",
            labels=["event", "outcome"],
        )
        for key, value in sorted(stats["webhooks"].items()):
            event, _, outcome = key.partition("|")
            hooks.add_metric([event, outcome], value)
        yield hooks
        errors = CounterMetricFamily(
            "cutout_job_errors",
            "Failed jobs by model and error code",
            labels=["model", "code"],
        )
        for key, value in sorted(stats.get("errors", {}).items()):
            model, _, code = key.partition("|")
            errors.add_metric([model, code], value)
        yield errors
        retries = CounterMetricFamily(
            "cutout_job_retries",
            "Job runs tried again, by reason (a transient error code, or worker_lost)",
            labels=["reason"],
        )
        for reason, value in sorted(stats.get("retries", {}).items()):
            retries.add_metric([reason], value)
        yield retries
        corrections = CounterMetricFamily(
            "cutout_corrections",
            "Corrected masks' re-renders (PUT /v1/jobs/{id}/mask) by outcome",
            labels=["outcome"],
        )
        for outcome, value in sorted(stats.get("corrections", {}).items()):
            corrections.add_metric([outcome], value)
        yield corrections
        stages = HistogramMetricFamily(
            "cutout_stage_seconds", "Worker time per processing stage", labels=["stage"]
        )
        names = sorted({key.partition("|")[0] for key in stats["stages"]})
        for stage in names:
            buckets = [
                (str(bound), stats["stages"].get(f"{stage}|{bound}", 0.0))
                for bound in telemetry.STAGE_BUCKETS
            ]
            buckets.append(("+Inf", stats["stages"].get(f"{stage}|+Inf", 0.0)))
            stages.add_metric([stage], buckets, stats["stages"].get(f"{stage}|sum", 0.0))
        yield stages
        workers = GaugeMetricFamily("cutout_workers_alive", "Worker processes with a heartbeat")
        workers.add_metric([], float(len(alive)))
        yield workers
        info = GaugeMetricFamily(
            "cutout_worker_rss_bytes",
            "Resident memory of each worker process",
            labels=["worker", "device", "provider"],
        )
        for worker in alive:
            provider = (worker.get("providers") or ["none"])[0]
            info.add_metric(
                [worker["id"], worker.get("device", "cpu"), provider],
                float(worker.get("rss_bytes") or 0),
            )
        yield info

    def describe(self) -> Iterator[Metric]:
        return iter(())


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


@bp.get("/healthz")
@doc(
    summary="Liveness: the process answers",
    tags=["operations"],
    responses={200: {"description": "alive", "schema": {"type": "object"}}},
)
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@doc(
    summary="Readiness: Redis and object storage are reachable",
    tags=["operations"],
    responses={
        200: {"description": "ready", "schema": {"type": "object"}},
        503: {"description": "a backing service is unreachable", "problem": True},
    },
)
def readyz() -> Response:
    services = current()
    started = time.perf_counter()
    checks = {
        "redis": "ok" if services.store.ping() else "unreachable",
        "storage": "ok" if services.storage.ping() else "unreachable",
    }
    if services.monitor.separate_broker:
        # a separate Redis for Celery's queues (CUTOUT_BROKER_URL)
        checks["broker"] = "ok" if services.monitor.broker_ping() else "unreachable"
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        return problem_response(
            Unavailable(f"not ready: {', '.join(failed)} unreachable", checks=checks)
        )
    # workers are reported, not required: the API stays ready while workers scale to zero
    # (queue-depth autoscaling starts them when jobs arrive). `alive` counts worker
    # processes with a heartbeat (pool children), `consuming` the workers whose consumer
    # takes messages now (worker/health.py): `cutout up` says "ready" once that is one
    try:
        alive = services.monitor.workers()
        consuming = services.monitor.consumers()
    except Unavailable:
        alive, consuming = [], 0
    workers: dict[str, Any] = {"alive": len(alive), "consuming": consuming}
    if trust.may_see_details(services.settings):
        # host names, pids and memory: for callers with a key, or local ones
        workers["details"] = alive
    return jsonify(
        {
            "status": "ok",
            "checks": checks,
            "workers": workers,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
    )


@bp.get("/metrics")
@doc(
    summary="Prometheus metrics",
    tags=["operations"],
    responses={200: {"description": "Prometheus text format", "content_type": "text/plain"}},
)
def metrics() -> Response:
    services = current()
    return Response(
        services.metrics.render(),
        mimetype=CONTENT_TYPE_LATEST.split(";")[0],
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )
