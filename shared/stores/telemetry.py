"""Worker telemetry kept in Redis, so the API's ``/metrics`` and ``/readyz`` can report
on workers that run anywhere (prefork children, other machines) without scraping them.

- job outcomes by model and status, failed jobs by error code, stage durations as
  histograms: each worker process's totals, written with the transition that finishes
  a job (shared/stores/jobstats.py), folded into the hashes below when the process stops;
- webhook outcomes, retries and corrected masks' re-renders: Redis hashes incremented
  by workers (HINCRBY, atomic);
- heartbeats: one key per worker process with a short TTL, holding what it runs on
  (device, execution providers, models, threads, RSS).

Used by the API and the worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from shared.stores import jobstats
from shared.stores.jobs import PREFIX

STAGE_BUCKETS = jobstats.STAGE_BUCKETS
JOBS_KEY = f"{PREFIX}stats:jobs"
WEBHOOKS_KEY = f"{PREFIX}stats:webhooks"
# failed jobs by model and error code; retries by reason (a transient error's code, or
# worker_lost for a run the sweeper took up again)
ERRORS_KEY = f"{PREFIX}stats:errors"
RETRIES_KEY = f"{PREFIX}stats:retries"
# corrected masks' re-renders by outcome (succeeded, failed): worker/corrections.py
CORRECTIONS_KEY = f"{PREFIX}stats:corrections"
# cumulative stage buckets, as workers before shared/stores/jobstats.py kept them (still read)
STAGES_KEY = f"{PREFIX}stats:stages"
WORKER_PREFIX = f"{PREFIX}worker:"
HEARTBEAT_TTL = 30


def record_webhook(client: Any, event: str, outcome: str) -> None:
    client.hincrby(WEBHOOKS_KEY, f"{event}|{outcome}", 1)


def record_retry(client: Any, reason: str) -> None:
    """Count a job run that will be tried again: ``reason`` is the transient error's code
    (``storage_error``, ``unavailable``) or ``worker_lost``."""
    client.hincrby(RETRIES_KEY, reason, 1)


def record_correction(client: Any, outcome: str) -> None:
    """Count a corrected mask's re-render that finished: ``succeeded`` or ``failed``."""
    client.hincrby(CORRECTIONS_KEY, outcome, 1)


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
    """Every counter workers recorded: the folded hashes plus each process's totals, with
    the stage histograms as Prometheus' cumulative buckets (``stage|bound``)."""
    pipe = client.pipeline(transaction=False)
    for key in (JOBS_KEY, STAGES_KEY, WEBHOOKS_KEY, ERRORS_KEY, RETRIES_KEY, CORRECTIONS_KEY):
        pipe.hgetall(key)
    pipe.hgetall(jobstats.BINS_KEY)
    pipe.hgetall(jobstats.PROCS_KEY)
    jobs, stages, hooks, errors, retries, corrections, folded, procs = pipe.execute()

    def numbers(values: Mapping[Any, Any]) -> dict[str, float]:
        return {text(k): float(v) for k, v in values.items()}

    totals = {"jobs": numbers(jobs), "errors": numbers(errors), "bins": {}, "sums": {}}
    for key, value in numbers(folded).items():
        stage, _, part = key.partition("|")
        if part == "sum":
            totals["sums"][stage] = value
        else:
            totals["bins"][key] = value
    for raw in procs.values():
        for part, values in jobstats.decode(text(raw)).items():
            for key, value in values.items():
                totals[part][key] = totals[part].get(key, 0.0) + float(value)
    return {
        "jobs": totals["jobs"],
        "stages": jobstats.cumulative(numbers(stages), totals["bins"], totals["sums"]),
        "webhooks": numbers(hooks),
        "errors": totals["errors"],
        "retries": numbers(retries),
        "corrections": numbers(corrections),
    }


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def fold(client: Any, fields: list[str]) -> int:
    """Add these process fields' totals to the shared hashes and remove them (one step)."""
    if not fields:
        return 0
    keys = [jobstats.PROCS_KEY, JOBS_KEY, ERRORS_KEY, jobstats.BINS_KEY]
    return int(client.register_script(jobstats.FOLD)(keys=keys, args=fields))


def fold_stale(client: Any, now: float | None = None) -> int:
    """Fold the fields of processes that died without stopping (shared/stores/jobstats.py)."""
    procs = {text(k): text(v) for k, v in client.hgetall(jobstats.PROCS_KEY).items()}
    if not procs:
        return 0
    stale = jobstats.stale_fields(procs, time.time() if now is None else now)
    if not stale:
        return 0
    # a process still beating is left alone (one EXISTS each, never a SCAN of the keys)
    pipe = client.pipeline(transaction=False)
    for field in stale:
        pipe.exists(WORKER_PREFIX + jobstats.heartbeat_id(field))
    beating = pipe.execute()
    return fold(client, [field for field, alive in zip(stale, beating, strict=True) if not alive])
