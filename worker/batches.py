"""``cutout.enqueue_batch``: send a stored batch's ``process_job`` messages in chunks.

The API stores every job record of a batch and then queues this one task (on
``interactive``, so it starts at once), which keeps accepting a 10,000-item batch fast.
The task is resumable: a cursor on the batch record (``enqueued``, the number of items
whose messages were sent, in item order) moves after every chunk, so a run that is
redelivered after a crash goes on from there and re-sends at most one chunk (harmless:
``process_job`` does nothing for a job that is not queued). One run sends at most
:data:`SLICE` items and then queues its own continuation, so interactive jobs that
arrive meanwhile are not held up behind a long enqueue. A lock keeps two runs of one
batch from sending at the same time.
"""

from __future__ import annotations

import logging
import secrets

import redis
from celery import Task

from shared.errors import CutoutError
from shared.store import PREFIX
from shared.tasks import BULK, ENQUEUE_BATCH, INTERACTIVE, PROCESS_JOB
from worker import context, scheduler

log = logging.getLogger("cutout.worker")

CHUNK = 500  # messages between cursor updates
SLICE = 2000  # messages per run; a continuation sends the rest
LOCK_TTL = 60  # seconds; far above the time one slice takes
BUSY_RETRY = 15.0  # seconds until a run that found the lock taken looks again
RETRIES = 8

# delete the lock only if it is still ours
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lock_key(batch_id: str) -> str:
    return f"{PREFIX}batch:{batch_id}:enqueue-lock"


def enqueue_batch(self: Task, batch_id: str) -> str:
    """Send up to :data:`SLICE` of the batch's remaining messages; continue if more remain."""
    ctx = context.get()
    try:
        return _enqueue(ctx, batch_id)
    except (CutoutError, redis.RedisError) as exc:
        if isinstance(exc, CutoutError) and not exc.transient:
            raise
        from worker.tasks import backoff

        log.warning("enqueue of batch failed, retrying", extra={"batch_id": batch_id})
        raise self.retry(countdown=backoff(self.request.retries), exc=exc) from exc


def _enqueue(ctx: context.WorkerContext, batch_id: str) -> str:
    store = ctx.store
    token = secrets.token_hex(8)
    if not store.r.set(lock_key(batch_id), token, nx=True, ex=LOCK_TTL):
        # another run is sending (or died holding the lock): look again later, durably
        scheduler.schedule(store.r, ENQUEUE_BATCH, [batch_id], INTERACTIVE, BUSY_RETRY)
        return "busy"
    try:
        batch = store.get_batch(batch_id)
        if batch is None:
            log.warning("batch record missing (expired?)", extra={"batch_id": batch_id})
            return "missing"
        total = int(batch["counts"]["total"])
        cursor = int(batch.get("enqueued") or 0)
        sent = 0
        while cursor < total and sent < SLICE:
            ids = store.batch_job_ids(batch_id, cursor, cursor + min(CHUNK, SLICE - sent) - 1)
            if not ids:
                break
            for job_id in ids:
                ctx.app.send_task(PROCESS_JOB, args=[job_id], queue=BULK)
            cursor += len(ids)
            sent += len(ids)
            store.update_batch(batch_id, enqueued=cursor)
    finally:
        store.r.eval(_UNLOCK, 1, lock_key(batch_id), token)
    if cursor < total:
        ctx.app.send_task(ENQUEUE_BATCH, args=[batch_id], queue=INTERACTIVE)
        log.info(
            "batch partly enqueued, continuing",
            extra={"batch_id": batch_id, "enqueued": cursor, "total": total},
        )
        return "continued"
    log.info("batch enqueued", extra={"batch_id": batch_id, "total": total})
    return "enqueued"
