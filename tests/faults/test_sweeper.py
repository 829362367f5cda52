"""The stuck-job sweeper on its own, against a real Redis: a run whose worker died is
taken up once however long its queue, and a job that keeps dying fails for good.

These drive ``Scheduler.sweep`` directly (no worker process), with job records as a dead
worker leaves them: ``processing``, its run's deadline in the past.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from shared.contract.settings import load_settings
from shared.contract.tasks import make_celery
from shared.ids import new_id, now_iso
from shared.stores.jobs import PROCESSING_KEY, RedisStore
from shared.stores.workerstore import RedisWorkerStore
from worker.scheduler import SWEEP_LOCK, Scheduler


@pytest.fixture
def url(module_db: str) -> str:
    # a database of our own: the sweep looks at every job in it
    redis.Redis.from_url(module_db).flushdb()
    return module_db


@pytest.fixture
def sweeper(url: str) -> Scheduler:
    settings = load_settings({"CUTOUT_REDIS_URL": url, "CUTOUT_MAX_ATTEMPTS": "3"})
    store = RedisWorkerStore.from_url(url, retention=600)
    ctx = SimpleNamespace(
        settings=settings, store=store, storage=None, app=make_celery(settings), _engine=None
    )
    return Scheduler(ctx)


def dead_run(store: RedisStore, queue: str, attempts: int) -> tuple[str, str]:
    """A one-item batch whose job is ``processing`` with a deadline that has passed."""
    batch_id, job_id = new_id("bat"), new_id("job")
    store.create_batch({"id": batch_id, "tenant": "t", "created_at": now_iso()}, total=1)
    store.add_batch_jobs(
        batch_id,
        [
            {
                "id": job_id,
                "tenant": "t",
                "status": "queued",
                "created_at": now_iso(),
                "options": {"model": "u2netp"},
                "attempts": attempts - 1,
                "batch_id": batch_id,
                "queue": queue,
            }
        ],
    )
    started = store.transition(
        job_id, "processing", ("queued",), attempts="+1", run_deadline=time.time() - 1
    )
    assert started.applied
    return batch_id, job_id


def sweep(sweeper: Scheduler) -> int:
    r: Any = sweeper.ctx.store.r
    r.delete(SWEEP_LOCK)  # the lock spaces sweeps out in time; here they run back to back
    return sweeper.sweep()


def test_a_dead_run_is_requeued_once_however_long_it_waits(sweeper: Scheduler, url: str) -> None:
    store = sweeper.ctx.store
    queue = f"sweep-{new_id('q')}"
    batch_id, job_id = dead_run(store, queue, attempts=1)
    broker = redis.Redis.from_url(url)

    assert sweep(sweeper) >= 1
    job = store.get_job(job_id)
    assert job.status == "queued"
    assert job.attempts == 1  # the run that died counted when it started
    assert store.get_batch(batch_id).counts["queued"] == 1
    assert store.get_batch(batch_id).counts["processing"] == 0
    assert store.r.zscore(PROCESSING_KEY, job_id) is None
    assert broker.llen(queue) == 1

    # no worker has taken the message yet (a long queue): later sweeps leave it alone
    sweep(sweeper)
    sweep(sweeper)
    assert broker.llen(queue) == 1
    assert store.get_job(job_id).status == "queued"
    broker.delete(queue)


def test_a_job_started_max_attempts_times_fails_when_its_run_dies(sweeper: Scheduler) -> None:
    store = sweeper.ctx.store
    queue = f"sweep-{new_id('q')}"
    batch_id, job_id = dead_run(store, queue, attempts=3)

    assert sweep(sweeper) >= 1
    job = store.get_job(job_id)
    assert job.status == "failed"
    assert job.error["code"] == "processing_failed"
    assert job.attempts == 3
    batch = store.get_batch(batch_id)
    assert batch.status == "completed"
    assert batch.counts["failed"] == 1
    assert store.r.zscore(PROCESSING_KEY, job_id) is None
