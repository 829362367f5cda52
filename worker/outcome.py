"""Recording a job's outcome: its terminal state, its metrics, and the webhooks it calls
for. Used by the task (worker/tasks.py) and the sweeper (worker/scheduler.py), so it
imports neither."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.contract.shapes.records import JobRecord
from shared.errors import ProcessingFailed
from shared.ids import now_iso
from shared.stores.jobscripts import Transition
from shared.stores.jobstats import TALLY
from worker import webhooks

if TYPE_CHECKING:
    from worker.context import WorkerContext
    from worker.engine.quality import Quality

log = logging.getLogger("cutout.worker")


def quality_fields(quality: Quality | None, review_below: float) -> dict[str, Any] | None:
    """``result.quality`` of a job (shared.contract.shapes.records.Quality): the engine's score and
    flags, and ``review`` against ``CUTOUT_REVIEW_BELOW``; None when there is no score."""
    if quality is None:
        return None
    return {
        "score": quality.score,
        "flags": list(quality.flags),
        "review": quality.score < review_below,
        "level": quality.level,
    }


def finish(
    ctx: WorkerContext,
    job_id: str,
    status: str,
    *,
    model: str = "unknown",
    timings: dict[str, float] | None = None,
    record: JobRecord | None = None,
    **fields: Any,
) -> Transition:
    """Record a terminal state (from processing or queued) and announce it.

    The job counts in this process's metrics in the same step (shared/stores/jobstats.py);
    ``record``, the job as read before, saves reading it again."""
    code = (fields.get("error") or {}).get("code")
    with TALLY.lock:
        totals, carried = TALLY.job(model, status, timings or {}, error_code=code)
        done = ctx.store.transition(
            job_id,
            status,
            ("processing", "queued"),
            record=record,
            stats=carried,
            finished_at=now_iso(),
            **fields,
        )
        if done.applied:
            TALLY.commit(totals, done.stats)
    if done.applied:
        announce(ctx, job_id, status, done, record)
    return done


def fail_after_worker_loss(ctx: WorkerContext, job: JobRecord) -> bool:
    """Fail a job whose runs kept dying with ``processing_failed``; True if this call did.

    Called when a job found in ``processing`` (its last run died) has already been
    started ``CUTOUT_MAX_ATTEMPTS`` times: by a redelivered task, or by the sweeper.
    """
    attempts = job.attempts or 0
    model = str((job.options or {}).get("model", "unknown"))
    error = ProcessingFailed(f"processing stopped {attempts} times without finishing")
    done = finish(ctx, job.id, "failed", model=model, record=job, error=error.to_job_error())
    if done.applied:
        log.error(
            "job failed after repeated worker loss",
            extra={
                "job_id": job.id,
                "tenant": job.tenant,
                "batch_id": job.batch_id,
                "attempts": attempts,
            },
        )
    return done.applied


def count_retry(ctx: WorkerContext, reason: str) -> None:
    """Count a run that will be tried again (never raises)."""
    try:
        ctx.store.record_retry(reason)
    except Exception:  # noqa: BLE001 - metrics never fail a job (Redis may be the reason)
        log.debug("could not count a retry")


def reannounce(ctx: WorkerContext, job: JobRecord) -> None:
    """Queue again the webhooks of a job found finished (each event is claimed once)."""
    batch = ctx.store.get_batch(job.batch_id) if job.batch_id else None
    completed = batch is not None and batch.status == "completed"
    if job.webhook or completed:
        webhooks.after_job_finished(ctx, job.id, job.status, completed)


def announce(
    ctx: WorkerContext,
    job_id: str,
    status: str,
    done: Transition,
    record: JobRecord | None = None,
) -> None:
    """Queue the webhook deliveries this state change calls for."""
    webhooks.after_job_finished(ctx, job_id, status, done.batch_completed, record)
