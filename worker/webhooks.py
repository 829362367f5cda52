"""Webhook events: which state changes announce what, and delivery with retries.

Events: ``job.succeeded`` / ``job.failed`` for a job with a ``webhook_url`` (and
``job.corrected`` after each corrected mask's re-render, worker/corrections.py), and
``batch.completed`` (exactly once: the store's transition says which finishing job
completed the batch). One ``webhook-id`` per event, reused on every retry. Retries follow
``CUTOUT_WEBHOOK_RETRY_SCHEDULE`` through the durable delay set (worker/scheduler.py).
The body is rebuilt from the finished record on each attempt, with the event's
``timestamp`` fixed to the object's ``finished_at``; only the ``webhook`` member (the
delivery's own status and attempt count) differs between attempts. An event is queued
once per object (a Redis claim on its ``webhook-id``), so announcing it again is harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery import Task

from shared.contract.shapes import public_batch, public_job
from shared.contract.shapes.records import BatchRecord, JobRecord
from shared.contract.tasks import DELIVER_WEBHOOK, WEBHOOKS
from shared.errors import CutoutError
from shared.net import webhooks as signing
from shared.stores.workerstore import STORE_ERROR
from worker import context
from worker.retry import backoff

log = logging.getLogger("cutout.webhooks")


def after_job_finished(
    ctx: context.WorkerContext,
    job_id: str,
    status: str,
    batch_completed: bool,
    record: JobRecord | None = None,
) -> None:
    """Queue the events a job's terminal state calls for. ``record``: the job as read
    before (its ``webhook`` and ``batch_id`` do not change), saving a round trip."""
    job = record if record is not None else ctx.store.get_job(job_id)
    if job is None:
        return
    if job.webhook and status in ("succeeded", "failed"):
        _queue_event(ctx, "job", job_id, f"job.{status}")
    if batch_completed and job.batch_id:
        batch = ctx.store.get_batch(job.batch_id)
        if batch and batch.webhook:
            _queue_event(ctx, "batch", job.batch_id, "batch.completed")


def after_job_corrected(ctx: context.WorkerContext, job: JobRecord, version: int) -> None:
    """Queue ``job.corrected`` for the correction that made result ``version`` (once per
    version); the job's ``webhook`` member then follows this event's delivery."""
    if job.webhook:
        fresh = {"status": "pending", "attempts": 0, "last_status": None, "last_error": None}
        _queue_event(ctx, "job", job.id, "job.corrected", f"job.corrected.v{version}", fresh)


def _queue_event(
    ctx: context.WorkerContext,
    kind: str,
    object_id: str,
    event: str,
    claim: str | None = None,
    fresh: dict[str, Any] | None = None,
) -> bool:
    """Queue the event's first delivery, once per object and event (or ``claim``, for an
    event an object has more than once); False if it already was.

    The claim (SET NX) makes a second announcement of the same event (a redelivered task
    that finds its job already finished) a no-op, so there is one ``webhook-id`` per event.
    """
    msg_id = signing.new_message_id()
    if not ctx.store.claim_event(kind, object_id, claim or event, msg_id):
        return False
    _update(ctx, kind, object_id, {**(fresh or {}), "id": msg_id, "event": event})
    args = [kind, object_id, event, msg_id, 0]
    try:
        ctx.app.send_task(DELIVER_WEBHOOK, args=args, queue=WEBHOOKS)
    except Exception:  # noqa: BLE001 - kombu/redis raise many types; the delay set is Redis too
        log.warning("webhook not queued, handed to the delay set", extra={"msg_id": msg_id})
        ctx.store.sweeps.schedule(DELIVER_WEBHOOK, args, WEBHOOKS, 1.0)
    return True


def _load(ctx: context.WorkerContext, kind: str, object_id: str) -> JobRecord | BatchRecord | None:
    if kind == "job":
        return ctx.store.get_job(object_id)
    return ctx.store.get_batch(object_id)


def _update(ctx: context.WorkerContext, kind: str, object_id: str, changes: dict[str, Any]) -> None:
    record = _load(ctx, kind, object_id)
    if record is None or not record.webhook:
        return
    webhook = {**record.webhook, **changes}
    if kind == "job":
        ctx.store.update_job(object_id, webhook=webhook)
    else:
        ctx.store.update_batch(object_id, webhook=webhook)


def deliver_webhook(
    self: Task, kind: str, object_id: str, event: str, msg_id: str, attempt: int
) -> str:
    """One delivery attempt; schedules the next one after the configured delay.

    Our own store being down is not the receiver's fault: the attempt is retried with
    backoff and counts nothing.
    """
    try:
        return _deliver(kind, object_id, event, msg_id, attempt)
    except (CutoutError, STORE_ERROR) as exc:
        if isinstance(exc, CutoutError) and not exc.transient:
            raise
        log.warning("webhook attempt could not run, retrying", extra={"msg_id": msg_id})
        raise self.retry(countdown=backoff(self.request.retries), exc=exc) from exc


def _deliver(kind: str, object_id: str, event: str, msg_id: str, attempt: int) -> str:
    ctx = context.get()
    record = _load(ctx, kind, object_id)
    if record is None or not record.webhook:
        return "gone"
    hook = record.webhook
    if hook.get("status") == "delivered" and hook.get("id") == msg_id:
        return "already-delivered"
    body = _event_body(kind, event, record)
    secret = ctx.store.webhook_secret(str(record.tenant))
    outcome = signing.deliver(
        hook["url"],
        secret,
        msg_id,
        body,
        timeout=ctx.settings.webhook_timeout,
        allowed_networks=ctx.settings.allowed_private_networks,
    )
    attempts = int(hook.get("attempts") or 0) + 1
    fields = {
        "log": {
            "kind": kind,
            "id": object_id,
            "event": event,
            "msg_id": msg_id,
            "attempt": attempts,
            "status": outcome.status,
        },
        # top level too, so one search by job_id / batch_id / tenant finds these lines
        f"{kind}_id": object_id,
        "tenant": record.tenant,
    }
    ctx.store.record_webhook(event, "delivered" if outcome.ok else "failed_attempt")
    if outcome.ok:
        _update(ctx, kind, object_id, _webhook_state("delivered", attempts, outcome))
        log.info("webhook delivered", extra=fields)
        return "delivered"
    task_args = (kind, object_id, event, msg_id, attempt)
    return _after_failed_attempt(ctx, task_args, attempts, outcome, fields)


def _event_body(kind: str, event: str, record: JobRecord | BatchRecord) -> bytes:
    """The event's body, the same on every attempt: its time is when the object finished
    (for ``job.corrected``, when the correction's re-render did)."""
    data = public_job(record) if isinstance(record, JobRecord) else public_batch(record)
    finished = record.finished_at
    if event == "job.corrected" and isinstance(record, JobRecord):
        finished = (record.correction or {}).get("finished_at") or finished
    moment = datetime.fromisoformat(finished.replace("Z", "+00:00")) if finished else None
    return signing.event_body(event, data, now=moment)


def _webhook_state(
    status: str, attempts: int, outcome: signing.DeliveryOutcome, error: str | None = None
) -> dict[str, Any]:
    """The record's ``webhook`` member after an attempt."""
    return {
        "status": status,
        "attempts": attempts,
        "last_status": outcome.status,
        "last_error": error,
    }


def _after_failed_attempt(
    ctx: context.WorkerContext,
    task_args: tuple[str, str, str, str, int],
    attempts: int,
    outcome: signing.DeliveryOutcome,
    fields: dict[str, Any],
) -> str:
    """Gives up (last attempt, or an answer not worth retrying) or schedules the next
    attempt after the retry schedule's delay; ``task_args`` are this attempt's."""
    kind, object_id, event, msg_id, attempt = task_args
    schedule = ctx.settings.webhook_retry_schedule
    final = attempt >= len(schedule) or not outcome.retryable
    state = _webhook_state("failed" if final else "pending", attempts, outcome, outcome.error)
    _update(ctx, kind, object_id, state)
    if final:
        ctx.store.record_webhook(event, "gave_up")
        log.warning("webhook failed for good", extra=fields)
        return "failed"
    ctx.store.sweeps.schedule(
        DELIVER_WEBHOOK,
        [kind, object_id, event, msg_id, attempt + 1],
        WEBHOOKS,
        schedule[attempt],
    )
    log.info("webhook attempt failed, retry scheduled", extra=fields)
    return "retrying"
