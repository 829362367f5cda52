"""Celery tasks. Every task is replayable: it reloads state, does nothing when the job
is already finished, writes under keys derived from the job id, and only then records
the outcome, so a redelivery after a crash or a lost connection is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from celery import Celery, Task, signals
from celery.exceptions import Retry, SoftTimeLimitExceeded

from shared.contract import tasks as contract
from shared.contract.options import MODELS, Options
from shared.contract.shapes.records import TERMINAL, JobRecord
from shared.errors import (
    CutoutError,
    NotFound,
    ProcessingFailed,
    ProcessingTimeout,
    StorageError,
    UploadNotFound,
)
from shared.ids import now_iso
from shared.net.guard import fetch
from shared.s3.keys import output_key
from shared.stores.jobstats import TALLY
from worker import batches, context, corrections, webhooks
from worker.background import read_background
from worker.fair import Dispatcher, parks
from worker.outcome import (
    count_retry,
    fail_after_worker_loss,
    finish,
    quality_fields,
    reannounce,
)
from worker.retry import TRANSIENT_RETRIES, backoff
from worker.serving import serving_tenant
from worker.stops import STOP_TYPES, hand_back, stopping

if TYPE_CHECKING:
    from worker.engine.stages import Result

log = logging.getLogger("cutout.worker")

__all__ = ["backoff", "fail_after_worker_loss", "process_job", "register"]


def register(app: Celery) -> None:
    app.task(name=contract.PROCESS_JOB, bind=True, acks_late=True, max_retries=TRANSIENT_RETRIES)(
        process_job
    )
    app.task(name=contract.ENQUEUE_BATCH, bind=True, acks_late=True, max_retries=batches.RETRIES)(
        batches.enqueue_batch
    )
    # a delivery waits at most CUTOUT_WEBHOOK_TIMEOUT; its retries go through the delay set
    app.task(
        name=contract.DELIVER_WEBHOOK, bind=True, acks_late=True, max_retries=TRANSIENT_RETRIES
    )(webhooks.deliver_webhook)
    app.task(name=contract.ANNOUNCE, acks_late=True)(announce_finished)
    # a corrected mask's re-render (worker/corrections.py): redelivered after a stop
    app.task(name=contract.CORRECT_JOB, bind=True, acks_late=True, max_retries=TRANSIENT_RETRIES)(
        corrections.correct_job
    )
    # a process's metric totals join the shared counters when it stops (pool children
    # on their way out, a solo worker at its shutdown): shared/stores/jobstats.py
    signals.worker_process_shutdown.connect(fold_metrics, weak=False)
    signals.worker_shutdown.connect(fold_metrics, weak=False)


def fold_metrics(**_: Any) -> None:
    """Fold this process's metric totals into the shared counters (never raises: if
    Redis does not answer, the totals stay in their field, still counted)."""
    with TALLY.lock:
        if not any(TALLY.totals.values()):
            return
        try:
            context.get().store.fold_metrics([TALLY.id])
        except Exception:  # noqa: BLE001 - a process on its way out
            log.warning("metric totals not folded; they stay counted under %s", TALLY.id)
            return
        TALLY.folded()


def announce_finished(job_id: str, status: str, batch_completed: bool) -> None:
    """Queue the webhooks of a state reached outside a worker (an API cancel)."""
    webhooks.after_job_finished(context.get(), job_id, status, batch_completed)


class _RetryStarted(Exception):
    """A transient failure of a run that had moved its job to ``processing``."""

    def __init__(self, error: CutoutError) -> None:
        super().__init__(error.message)
        self.error = error


def process_job(self: Task, job_id: str) -> str:
    """Run one job: input from storage (or its URL) → engine → result in storage → record."""
    ctx = context.get()
    try:
        return _process(self, ctx, job_id)
    except _RetryStarted as started:
        _retry(self, ctx, job_id, started.error, started=True)
    except CutoutError as exc:
        if not exc.transient:
            raise
        _retry(self, ctx, job_id, exc, started=False)
    raise AssertionError("unreachable: _retry raises")


def _retry(
    task: Task, ctx: context.WorkerContext, job_id: str, exc: CutoutError, *, started: bool
) -> None:
    """The store or storage is down: run again after a backoff; the job waits in queued.

    The retry's message is sent first, and only then does the job go back to ``queued``.
    A run killed in between (its hard time limit, which acks its own message) leaves the
    job ``processing``, which the sweeper takes up; the other order left it ``queued``
    with no message anywhere, for good (seen in the fault test that freezes S3).
    """
    log.warning("transient failure, retrying", extra={"job_id": job_id, "error": exc.code})
    count_retry(ctx, exc.code)
    try:
        task.retry(countdown=backoff(task.request.retries), exc=exc)
    except Retry:
        if started:
            # if Redis refuses, the job stays processing: the sweeper re-queues it (a
            # duplicate of the retry's message is harmless)
            with contextlib.suppress(CutoutError):
                ctx.store.transition(job_id, "queued", ("processing",))
        raise


def _claim(ctx: context.WorkerContext, job_id: str) -> JobRecord | str:
    """The job's record, moved to ``processing`` with one more attempt; or, as a string,
    why this delivery does not run it (the task's return value)."""
    settings = ctx.settings
    # Celery kills the run at the hard limit: past this, the sweeper re-queues the job
    deadline = time.time() + settings.task_time_limit + 5
    # the plain case (a queued single job on a built-in model) is read and moved in one
    # step; every other case is decided from the record read in that step
    quick = ctx.store.claim(job_id, MODELS, run_deadline=deadline, started_at=now_iso())
    job = quick.before
    if quick.applied and job is not None:
        return job
    if job is None:
        log.warning("job record missing (expired or deleted)", extra={"job_id": job_id})
        return "missing"
    if job.status in TERMINAL:
        # a run that died between recording the outcome and queueing its webhooks lost
        # them; each event is claimed once (worker/webhooks.py), so announcing is harmless
        reannounce(ctx, job)
        return "already-finished"
    if parks(job) and Dispatcher(ctx).park(job):
        # a custom model's single job waits in its tenant's line (worker/fair.py)
        log.info("custom-model job parked", extra=_log_fields(job_id, job))
        return "parked"
    attempts = job.attempts or 0
    if job.status == "processing" and attempts >= settings.max_attempts:
        # delivered again after its worker died each time: this input kills workers
        fail_after_worker_loss(ctx, job)
        return "failed"
    started = ctx.store.transition(
        job_id,
        "processing",
        ("queued", "processing"),
        record=job,
        attempts="+1",
        started_at=now_iso(),
        run_deadline=deadline,
    )
    return job if started.applied else "not-runnable"


def _log_fields(job_id: str, job: JobRecord) -> dict[str, Any]:
    return {"job_id": job_id, "tenant": job.tenant, "batch_id": job.batch_id}


class _Run:
    """One run of a claimed job: its record, when it began, and whether it is waiting on
    object storage now (see :func:`_job_error`)."""

    def __init__(self, job: JobRecord) -> None:
        self.job = job
        self.job_id: str = job.id
        self.model = str((job.options or {}).get("model", "unknown"))
        self.fields = _log_fields(self.job_id, job)
        self.begin = time.monotonic()
        self.on_storage = False


def _process(task: Task, ctx: context.WorkerContext, job_id: str) -> str:
    """Claim ``job_id``, run it and record the outcome: what the task returns."""
    claimed = _claim(ctx, job_id)
    if isinstance(claimed, str):
        return claimed
    run = _Run(claimed)
    try:
        key, result, timings = _work(ctx, run)
    except STOP_TYPES as exc:
        hand_back(ctx, job_id, exc)
    except (CutoutError, SoftTimeLimitExceeded) as exc:
        return _failed(ctx, run, _job_error(task, ctx, run, exc))
    except Exception as exc:
        if stopping(exc):
            # a stop that surfaced as another exception (worker/stops.py)
            hand_back(ctx, job_id, exc)
        # a bug or an input the engine chokes on: fail this job, keep the worker
        log.exception("unexpected error while processing", extra=run.fields)
        error = ProcessingFailed("processing failed unexpectedly")
        finish(ctx, job_id, "failed", model=run.model, record=run.job, error=error.to_job_error())
        return "failed"
    _succeeded(ctx, run.job, run.model, key, result, timings)
    log.info("job succeeded", extra={**run.fields, **_took(run.begin, timings)})
    return "succeeded"


def _work(ctx: context.WorkerContext, run: _Run) -> tuple[str, Result, dict[str, float]]:
    """The job's input (from storage or its URL) and background → the engine → the
    result in storage: its key, the engine's result and the timings."""
    job = run.job
    options = Options.from_stored(job.options or {})
    run.on_storage = (job.source or {}).get("kind") != "url"
    data = _read_input(ctx, job)
    corrections.keep_input(ctx, job, data)  # a URL's bytes, for corrected masks
    tenant = str(job.tenant)
    background = read_background(ctx, tenant, options)
    run.on_storage = False
    fetched = time.monotonic()
    # whose custom models, and the version the job was submitted with (docs/tune.md)
    with serving_tenant(tenant, job.model_sha256):
        result = ctx.engine.process(data, options, limits=ctx.settings, background=background)
    processed = time.monotonic()
    key = output_key(tenant, run.job_id, options.extension)
    run.on_storage = True
    ctx.storage.put(key, result.data, result.content_type)
    run.on_storage = False
    timings = {
        **result.timings,
        "fetch": fetched - run.begin,
        "store": time.monotonic() - processed,
        "total": time.monotonic() - run.begin,
    }
    return key, result, timings


def _job_error(
    task: Task,
    ctx: context.WorkerContext,
    run: _Run,
    exc: CutoutError | SoftTimeLimitExceeded,
) -> CutoutError:
    """The error a failed run records. Instead, a stop hands the job back, and a
    transient failure with retries left raises :class:`_RetryStarted`."""
    if stopping(exc):
        hand_back(ctx, run.job_id, exc)
    retries_left = task.request.retries < TRANSIENT_RETRIES
    if isinstance(exc, CutoutError):
        if exc.transient and retries_left:
            raise _RetryStarted(exc) from exc
        return exc
    if not run.on_storage:
        return ProcessingTimeout(f"processing took longer than {ctx.settings.task_time_limit}s")
    # the time went waiting on a storage call that hung (a server restarting, a stalled
    # connection: boto3's own timeouts can outlast a short task limit), not on this image:
    # a transient storage failure, retried like the others
    error = StorageError("object storage did not answer within the time limit")
    if retries_left:
        raise _RetryStarted(error) from None
    return error


def _failed(ctx: context.WorkerContext, run: _Run, error: CutoutError) -> str:
    """Record the job as failed with ``error``."""
    finish(ctx, run.job_id, "failed", model=run.model, record=run.job, error=error.to_job_error())
    log.info("job failed", extra={**run.fields, "error": error.code})
    return "failed"


def _took(begin: float, timings: dict[str, float]) -> dict[str, Any]:
    return {
        "ms": round((time.monotonic() - begin) * 1000),
        "timings_ms": {k: round(v * 1000, 1) for k, v in timings.items()},
    }


def _succeeded(
    ctx: context.WorkerContext,
    job: JobRecord,
    model: str,
    key: str,
    result: Result,
    timings: dict[str, float],
) -> None:
    """Record the outcome: the stored result's location, size, subject and quality (its
    score also enters the batch's review count and score order, in the same step)."""
    job_id = job.id
    scored = quality_fields(result.quality, ctx.settings.review_below)
    extra: dict[str, Any] = {}
    if scored is not None:
        extra = {"_score": scored["score"], "_review": int(scored["review"])}
    finish(
        ctx,
        job_id,
        "succeeded",
        model=model,
        timings=timings,
        record=job,
        **extra,
        result={
            "url": f"/v1/jobs/{job_id}/result",
            "key": key,
            "content_type": result.content_type,
            "width": result.width,
            "height": result.height,
            "bytes": len(result.data),
            "subject": result.subject,
            "foreground": result.foreground,
            "quality": scored,
            # what a corrected mask must fit (PUT /v1/jobs/{id}/mask)
            "input_size": list(result.input_size) if result.input_size else None,
        },
    )


def _read_input(ctx: context.WorkerContext, job: JobRecord) -> bytes:
    source = job.source or {"kind": "upload"}
    limit = ctx.settings.max_upload_bytes
    if source.get("kind") == "url":
        return fetch(
            source["url"],
            max_bytes=limit,
            allowed_networks=ctx.settings.allowed_private_networks,
        ).body
    try:
        return ctx.storage.get(str(job.input_key), max_bytes=limit)
    except NotFound:
        raise UploadNotFound("the job's input is no longer in storage") from None
