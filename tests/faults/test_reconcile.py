"""The reconciler on its own, against a real Redis: a queued job whose message is gone is
re-sent once its absence is confirmed; a job whose message waits (in its queue or held by
a worker) is never re-sent, however long it waits and however many there are.

These drive ``Reconciler.reconcile`` directly (no worker process), with a clock passed
in, on a Redis database of their own; messages are real Celery messages sent by the
contract's own Celery app, and moved to kombu's ``unacked`` hash the way a worker takes
one.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from shared.contract.settings import load_settings
from shared.contract.tasks import make_celery
from shared.ids import new_id, now_iso
from shared.stores.jobs import QUEUED_KEY, RedisStore
from shared.stores.workerstore import RedisWorkerStore
from worker.fair import Dispatcher
from worker.reconcile import SUSPECTS_KEY, Reconciler, job_of

BOUND = 300


@pytest.fixture
def url(module_db: str) -> str:
    # a database of our own: the reconciler looks at every queued job in it
    redis.Redis.from_url(module_db).flushdb()
    return module_db


@pytest.fixture
def ctx(url: str) -> Any:
    settings = load_settings({"CUTOUT_REDIS_URL": url, "CUTOUT_RECONCILE_AFTER": str(BOUND)})
    store = RedisWorkerStore.from_url(url, retention=600)
    return SimpleNamespace(settings=settings, store=store, app=make_celery(settings))


def queued_job(store: RedisStore, queue: str) -> str:
    job_id = new_id("job")
    store.create_job(
        {
            "id": job_id,
            "tenant": "t",
            "status": "queued",
            "created_at": now_iso(),
            "options": {"model": "u2netp"},
            "queue": queue,
        }
    )
    return job_id


def send(ctx: Any, job_id: str, queue: str) -> None:
    ctx.app.send_task("cutout.process_job", args=[job_id], queue=queue)


def later(store: RedisStore, job_id: str) -> float:
    """A moment past the bound for this job."""
    return float(store.r.zscore(QUEUED_KEY, job_id)) + BOUND + 1


def test_a_lost_message_is_sent_again_once_confirmed(ctx: Any) -> None:
    store, r = ctx.store, ctx.store.r
    queue = f"q-{new_id('q')}"
    job_id = queued_job(store, queue)  # the record and the index, and the message lost
    reconciler = Reconciler(ctx, confirm_after=5)
    now = later(store, job_id)

    assert reconciler.reconcile(now - 2) == 0  # not yet past the bound
    assert reconciler.reconcile(now) == 0  # missing once: a suspect, not yet proof
    assert r.zscore(SUSPECTS_KEY, job_id) == now
    assert r.llen(queue) == 0
    assert reconciler.reconcile(now + 1) == 0  # not a sweep apart yet
    assert reconciler.reconcile(now + 6) == 1  # missing again: sent again
    (raw,) = r.lrange(queue, 0, -1)
    assert job_of(raw) == job_id
    assert r.zscore(SUSPECTS_KEY, job_id) is None
    # listed again from the re-send: the new message is now what is waited for
    assert reconciler.reconcile(now + 12) == 0
    assert r.llen(queue) == 1
    assert r.hget("cutout:stats:retries", "message_lost") == "1"


def test_a_waiting_or_taken_message_is_never_sent_again(ctx: Any) -> None:
    store, r = ctx.store, ctx.store.r
    queue = f"q-{new_id('q')}"
    waiting, taken, started = (queued_job(store, queue) for _ in range(3))
    for job_id in (waiting, taken, started):
        send(ctx, job_id, queue)
    # a worker took `taken`'s message: kombu moves it into `unacked` (BRPOP, then HSET)
    for raw in r.lrange(queue, 0, -1):
        if job_of(raw) == taken:
            r.lrem(queue, 1, raw)
            r.hset("unacked", "tag-1", json.dumps([json.loads(raw), "", queue]))
    # `started` is running: it left the index as it left queued
    assert store.transition(started, "processing", ("queued",)).applied
    assert r.zscore(QUEUED_KEY, started) is None

    reconciler = Reconciler(ctx, confirm_after=5)
    now = later(store, waiting)
    for step in range(4):
        assert reconciler.reconcile(now + 10 * step) == 0
    assert r.llen(queue) == 2
    assert r.zcard(SUSPECTS_KEY) == 0
    # found waiting: listed again from then, so not read again before another bound
    assert r.zscore(QUEUED_KEY, waiting) == now
    # a job that finished leaves the index
    assert store.transition(waiting, "canceled", ("queued",)).applied
    assert r.zscore(QUEUED_KEY, waiting) is None


def test_a_large_waiting_batch_is_not_resent(ctx: Any) -> None:
    """2,000 dispatched batch items wait in `bulk` past the bound: none is re-sent."""
    store, r = ctx.store, ctx.store.r
    batch_id = new_id("bat")
    total = 2000
    store.create_batch({"id": batch_id, "tenant": "t", "created_at": now_iso()}, total=total)
    jobs = [
        {
            "id": new_id("job"),
            "tenant": "t",
            "status": "queued",
            "created_at": now_iso(),
            "options": {"model": "u2netp"},
            "batch_id": batch_id,
            "queue": "bulk",
            "item_index": index,
        }
        for index in range(total)
    ]
    store.add_batch_jobs(batch_id, jobs)
    wide = dataclasses.replace(ctx.settings, bulk_window=total)
    dispatcher = Dispatcher(SimpleNamespace(settings=wide, store=store, app=ctx.app))
    assert dispatcher.register(batch_id, "t")
    assert dispatcher.dispatch() == total
    assert r.llen("bulk") == total
    assert r.zcard(QUEUED_KEY) == total

    reconciler = Reconciler(ctx, confirm_after=5)
    now = max(r.zscore(QUEUED_KEY, job["id"]) for job in jobs) + BOUND + 1
    for step in range(3):
        assert reconciler.reconcile(now + 10 * step) == 0
    assert r.llen("bulk") == total
    assert r.zcard(SUSPECTS_KEY) == 0
