"""Liveness, readiness and Prometheus metrics.

``/healthz`` says the process answers; ``/readyz`` that Redis and object storage are
reachable (503 naming what is not, so a load balancer stops sending work); ``/metrics``
exposes the app's metrics (api/metrics.py).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

from api import trust
from api.errors import problem_response
from api.openapi import doc
from api.services import current
from shared.errors import Unavailable

bp = Blueprint("health", __name__)


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
