"""Worker telemetry kept in Redis, so the API's ``/metrics`` and ``/readyz`` can report
on workers that run anywhere (prefork children, other machines) without scraping them.

- job outcomes by model and status, stage durations as histogram buckets, webhook
  outcomes: Redis hashes incremented by workers (HINCRBY / HINCRBYFLOAT, atomic);
- heartbeats: one key per worker process with a short TTL, holding what it runs on
  (device, execution providers, models, threads, RSS).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from shared.store import PREFIX

STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOBS_KEY = f"{PREFIX}stats:jobs"
WEBHOOKS_KEY = f"{PREFIX}stats:webhooks"
# failed jobs by model and error code; retries by reason (a transient error's code, or
# worker_lost for a run the sweeper took up again)
ERRORS_KEY = f"{PREFIX}stats:errors"
RETRIES_KEY = f"{PREFIX}stats:retries"
STAGES_KEY = f"{PREFIX}stats:stages"
WORKER_PREFIX = f"{PREFIX}worker:"
HEARTBEAT_TTL = 30


def record_job(
    client: Any,
    model: str,
    status: str,
    timings: Mapping[str, float],
    error_code: str | None = None,
) -> None:
    """Count a finished job (a failed one also by its error code) and add its stage
    durations (seconds) to the histograms."""
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(JOBS_KEY, f"{model}|{status}", 1)
    if error_code:
        pipe.hincrby(ERRORS_KEY, f"{model}|{error_code}", 1)
    for stage, seconds in timings.items():
        for bound in STAGE_BUCKETS:
            if seconds <= bound:
                pipe.hincrby(STAGES_KEY, f"{stage}|{bound}", 1)
        pipe.hincrby(STAGES_KEY, f"{stage}|+Inf", 1)
        pipe.hincrbyfloat(STAGES_KEY, f"{stage}|sum", seconds)
    pipe.execute()


def record_webhook(client: Any, event: str, outcome: str) -> None:
    client.hincrby(WEBHOOKS_KEY, f"{event}|{outcome}", 1)


def record_retry(client: Any, reason: str) -> None:
    """Count a job run that will be tried again: ``reason`` is the transient error's code
    (``storage_error``, ``unavailable``) or ``worker_lost``."""
    client.hincrby(RETRIES_KEY, reason, 1)


# what any live worker serves, readable in one round trip (no SCAN per request): set by
# every heartbeat with the heartbeat's TTL
ALIVE_KEY = f"{PREFIX}workers-alive"
FAST_KEY = f"{PREFIX}workers-fast"


def heartbeat(client: Any, worker_id: str, info: Mapping[str, Any]) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.set(WORKER_PREFIX + worker_id, json.dumps({**info, "seen": time.time()}), ex=HEARTBEAT_TTL)
    if "fast" in info:
        pipe.set(ALIVE_KEY, "1", ex=HEARTBEAT_TTL)
        if info["fast"]:
            pipe.set(FAST_KEY, "1", ex=HEARTBEAT_TTL)
    pipe.execute()


# the workers whose consumer (Celery's main process) takes messages now: a sorted set of
# consumer ids scored by when their last beat expires, written from a thread of that
# process while the consumer's event loop runs (worker/health.py) and left when it stops.
# One key, so /readyz counts them in one step however many keys Redis holds (`cutout up`
# says "ready" once there is one). Scores are the workers' clocks: a skew of seconds
# only moves the expiry within HEARTBEAT_TTL
CONSUMERS_KEY = f"{PREFIX}consumers"


def consumer_heartbeat(client: Any, consumer_id: str) -> None:
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.zadd(CONSUMERS_KEY, {consumer_id: now + HEARTBEAT_TTL})
    pipe.zremrangebyscore(CONSUMERS_KEY, "-inf", now)
    pipe.expire(CONSUMERS_KEY, HEARTBEAT_TTL)
    pipe.execute()


def consumer_gone(client: Any, consumer_id: str) -> None:
    client.zrem(CONSUMERS_KEY, consumer_id)


def consumers(client: Any) -> int:
    """How many workers' consumers took messages within the last HEARTBEAT_TTL seconds."""
    return int(client.zcount(CONSUMERS_KEY, time.time(), "+inf"))


def workers(client: Any) -> list[dict[str, Any]]:
    """Every worker process that sent a heartbeat in the last HEARTBEAT_TTL seconds."""
    keys = list(client.scan_iter(match=WORKER_PREFIX + "*", count=200))
    if not keys:
        return []
    out = []
    for key, raw in zip(keys, client.mget(keys), strict=True):
        if raw:
            info = json.loads(raw)
            info["id"] = (key.decode() if isinstance(key, bytes) else key)[len(WORKER_PREFIX) :]
            out.append(info)
    return sorted(out, key=lambda w: w["id"])


def serves_fast(client: Any) -> bool | None:
    """Whether a live worker serves fast mode: True, False, or None when no worker is
    alive (or none says: workers from before the ``fast`` heartbeat field). Two GETs'
    worth of work, whatever the number of keys: it runs on every fast submission."""
    alive, fast = client.mget([ALIVE_KEY, FAST_KEY])
    if fast:
        return True
    return False if alive else None


def read_stats(client: Any) -> dict[str, dict[str, float]]:
    pipe = client.pipeline(transaction=False)
    for key in (JOBS_KEY, STAGES_KEY, WEBHOOKS_KEY, ERRORS_KEY, RETRIES_KEY):
        pipe.hgetall(key)
    jobs, stages, hooks, errors, retries = pipe.execute()

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return {
        "jobs": {text(k): float(v) for k, v in jobs.items()},
        "stages": {text(k): float(v) for k, v in stages.items()},
        "webhooks": {text(k): float(v) for k, v in hooks.items()},
        "errors": {text(k): float(v) for k, v in errors.items()},
        "retries": {text(k): float(v) for k, v in retries.items()},
    }
