"""Finished-job metrics against a real Redis: counted by the transition that finishes the
job, exactly once, with no command of their own; folded when a process stops, and the
totals of a process that died without stopping still counted (shared/stores/jobstats.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from shared.contract.shapes.records import JobRecord
from shared.ids import new_id, now_iso
from shared.stores import jobstats, telemetry
from shared.stores.workerstore import RedisWorkerStore
from tests.conftest import running_redis
from worker.outcome import finish

TIMINGS = {"inference": 0.3, "total": 0.42, "store": 0.004}


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this module's own: the command counts below are server-wide, and
    the session server's workers poll it twice a second."""
    with running_redis(tmp_path_factory.mktemp("metrics-redis")) as url:
        yield url


@pytest.fixture
def r(own_redis: str) -> Any:
    client = redis.Redis.from_url(own_redis, decode_responses=True)
    client.flushdb()
    jobstats.TALLY.folded()  # this test process counts from zero, under a new id
    return client


def _ctx(r: Any) -> Any:
    return SimpleNamespace(store=RedisWorkerStore(r, 3600), app=None)


def _processing_job(ctx: Any) -> JobRecord:
    job = JobRecord(
        id=new_id("job"),
        tenant="t1",
        status="queued",
        created_at=now_iso(),
        options={"model": "u2netp"},
        attempts=0,
        batch_id=None,
        webhook=None,
    )
    ctx.store.create_job(job)
    assert ctx.store.transition(job.id, "processing", ("queued",), record=job).applied
    return job


def _metric(stats: dict[str, dict[str, float]], part: str, key: str) -> float:
    return stats[part].get(key, 0.0)


def test_a_finished_job_counts_once_with_no_command_of_its_own(r: Any) -> None:
    ctx = _ctx(r)
    before = telemetry.read_stats(r)
    job = _processing_job(ctx)
    ctx.store.transition("job_warm", "failed", ("queued",))  # the script loaded, once
    r.config_resetstat()
    assert finish(ctx, job.id, "succeeded", model="u2netp", timings=TIMINGS, record=job).applied
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in r.info("commandstats").items()}
    # one script call moved the job and stored the metrics: no HINCRBY per bucket
    assert calls.get("hincrby", 0) == calls.get("hincrbyfloat", 0) == 0
    assert calls["evalsha"] == 1
    # a second finish of the same job (a redelivered task) changes nothing, counts nothing
    assert not finish(ctx, job.id, "succeeded", model="u2netp", timings=TIMINGS).applied

    stats = telemetry.read_stats(r)
    assert (
        _metric(stats, "jobs", "u2netp|succeeded") - _metric(before, "jobs", "u2netp|succeeded")
        == 1
    )
    inference = {k: v - before["stages"].get(k, 0.0) for k, v in stats["stages"].items()}
    # Prometheus' cumulative buckets: 0.3 s is above 0.25 and within 0.5 and every later one
    assert inference["inference|0.25"] == 0
    assert inference["inference|0.5"] == inference["inference|60.0"] == 1
    assert inference["inference|+Inf"] == 1
    assert inference["inference|sum"] == pytest.approx(0.3)
    assert inference["store|0.01"] == 1


def test_failed_jobs_count_by_error_code(r: Any) -> None:
    ctx = _ctx(r)
    job = _processing_job(ctx)
    error = {"code": "processing_timeout", "message": "slow"}
    assert finish(ctx, job.id, "failed", model="u2netp", record=job, error=error).applied
    stats = telemetry.read_stats(r)
    assert stats["jobs"]["u2netp|failed"] == 1
    assert stats["errors"]["u2netp|processing_timeout"] == 1


def test_fold_keeps_every_count_and_stale_fields_of_dead_processes_fold(r: Any) -> None:
    ctx = _ctx(r)
    for _ in range(3):
        job = _processing_job(ctx)
        finish(ctx, job.id, "succeeded", model="u2netp", timings=TIMINGS, record=job)
    # a process that stopped long ago without folding (SIGKILL): its totals still count
    dead = {"t": time.time() - 2 * jobstats.STALE_AFTER, "jobs": {"u2netp|succeeded": 5}}
    dead.update(bins={"inference|0.5": 5}, sums={"inference": 1.5}, errors={})
    r.hset(jobstats.PROCS_KEY, "gone-host.4242.abcd", json.dumps(dead))
    # one as old whose process still beats is left alone
    r.hset(jobstats.PROCS_KEY, "live-host.7.beef", json.dumps(dead))
    telemetry.heartbeat(r, "live-host.7", {"pid": 7})
    counted = telemetry.read_stats(r)
    assert counted["jobs"]["u2netp|succeeded"] == 3 + 5 + 5
    assert counted["stages"]["inference|+Inf"] == 13

    assert ctx.store.fold_stale_metrics() == 1
    assert ctx.store.fold_metrics([jobstats.TALLY.id]) == 1  # this process stops
    assert set(r.hkeys(jobstats.PROCS_KEY)) == {"live-host.7.beef"}
    assert telemetry.read_stats(r) == counted


def test_counters_of_older_workers_add_up_with_the_new_ones(r: Any) -> None:
    """A cluster upgraded in place: the cumulative buckets older workers kept are read too."""
    r.hset(telemetry.JOBS_KEY, "u2netp|succeeded", 2)
    for bound in jobstats.STAGE_BUCKETS:
        r.hset(telemetry.STAGES_KEY, f"inference|{bound}", 2 if bound >= 0.5 else 0)
    r.hset(telemetry.STAGES_KEY, mapping={"inference|+Inf": 2, "inference|sum": 0.8})
    ctx = _ctx(r)
    job = _processing_job(ctx)
    finish(ctx, job.id, "succeeded", model="u2netp", timings={"inference": 0.05}, record=job)
    stats = telemetry.read_stats(r)
    assert stats["jobs"]["u2netp|succeeded"] == 3
    assert stats["stages"]["inference|0.05"] == 1
    assert stats["stages"]["inference|0.5"] == 3
    assert stats["stages"]["inference|+Inf"] == 3
    assert stats["stages"]["inference|sum"] == pytest.approx(0.85)


def test_writes_redis_lost_are_counted_again_once_never_twice(r: Any) -> None:
    """Redis loses its last second of writes (a SIGKILL with appendfsync everysec, or a
    failover before replication): the job's move to succeeded and this process's metrics
    write are lost together; the job runs again, and counts once, not twice."""
    ctx = _ctx(r)
    first = _processing_job(ctx)
    finish(ctx, first.id, "succeeded", model="u2netp", timings=TIMINGS, record=first)
    kept = r.hget(jobstats.PROCS_KEY, jobstats.TALLY.id)
    job = _processing_job(ctx)
    finish(ctx, job.id, "succeeded", model="u2netp", timings=TIMINGS, record=job)
    # the lost tail: the second job is processing again, the metrics are the first's
    r.hset(jobstats.PROCS_KEY, jobstats.TALLY.id, kept)
    r.hset(f"cutout:job:{job.id}", "status", "processing")
    assert finish(ctx, job.id, "succeeded", model="u2netp", timings=TIMINGS, record=job).applied
    assert telemetry.read_stats(r)["jobs"]["u2netp|succeeded"] == 2
    # and the process carries on from what Redis holds
    third = _processing_job(ctx)
    finish(ctx, third.id, "succeeded", model="u2netp", timings=TIMINGS, record=third)
    stats = telemetry.read_stats(r)
    assert stats["jobs"]["u2netp|succeeded"] == 3
    assert stats["stages"]["inference|+Inf"] == 3
