"""``cutout.enqueue_batch``: put a stored batch in line for ``bulk``.

The API stores every job record of a batch and then queues this one task (on
``interactive``, so it starts at once), which keeps accepting a 10,000-item batch fast.
The task registers the batch with the fair dispatcher (worker/fair.py), which sends the
items' ``process_job`` messages to ``bulk`` a window per tenant at a time, and runs one
dispatch pass at once so that the first items start without waiting for the next pass of
a scheduler thread. Registering is idempotent (a flag on the batch record), so a
redelivered task adds nothing; the batch's cursor ``enqueued`` (items sent, in item
order) is the dispatcher's.
"""

from __future__ import annotations

import logging

from celery import Task

from shared.errors import CutoutError
from shared.stores.workerstore import STORE_ERROR
from worker import context
from worker.fair import Dispatcher
from worker.retry import TRANSIENT_RETRIES, backoff

log = logging.getLogger("cutout.worker")

RETRIES = TRANSIENT_RETRIES


def enqueue_batch(self: Task, batch_id: str) -> str:
    """Register the batch for dispatch to ``bulk`` and run one dispatch pass."""
    ctx = context.get()
    try:
        return _enqueue(ctx, batch_id)
    except (CutoutError, STORE_ERROR) as exc:
        if isinstance(exc, CutoutError) and not exc.transient:
            raise
        log.warning("enqueue of batch failed, retrying", extra={"batch_id": batch_id})
        raise self.retry(countdown=backoff(self.request.retries), exc=exc) from exc


def _enqueue(ctx: context.WorkerContext, batch_id: str) -> str:
    batch = ctx.store.get_batch(batch_id)
    if batch is None:
        log.warning("batch record missing (expired?)", extra={"batch_id": batch_id})
        return "missing"
    dispatcher = Dispatcher(ctx)
    registered = dispatcher.register(batch_id, batch.tenant or "")
    sent = dispatcher.dispatch()
    log.info(
        "batch registered" if registered else "batch already registered",
        extra={"batch_id": batch_id, "total": (batch.counts or {}).get("total"), "sent": sent},
    )
    return "registered" if registered else "already-registered"
