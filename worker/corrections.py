"""The corrected-mask task: a job's result rendered again from the mask a client sent
(PUT /v1/jobs/{id}/mask, docs/api.md "Corrected masks").

The API stored the mask and made it the job's pending correction (shared/stores/
corrections.py); this task reads the job's input (kept for the job's whole life:
:func:`keep_input` stores a URL job's input too), the mask and the background again,
renders with the job's own options (:meth:`Engine.rerender`), stores the result under
the correction's own key and the mask as grey PNG at the input's size, and only then
makes the new result the job's newest version, in one step that applies only while this
correction is still the job's pending one. So a redelivery (acks_late: a worker stopped
or lost mid-run) is harmless, and a run superseded by a newer correction changes nothing.

A failure leaves the previous version served and says why on ``correction.error``
(never a failed job); transient storage or Redis trouble is retried with backoff, as
jobs are. Each finished correction queues ``job.corrected`` once (worker/webhooks.py).
"""

from __future__ import annotations

import logging
import time

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from shared.contract import imagecheck
from shared.contract.options import Options
from shared.contract.shapes.records import JobRecord
from shared.errors import (
    CutoutError,
    NotFound,
    ProcessingFailed,
    ProcessingTimeout,
    UploadNotFound,
)
from shared.ids import now_iso
from shared.s3 import keys
from worker import context, webhooks
from worker.background import read_background
from worker.outcome import count_retry
from worker.retry import TRANSIENT_RETRIES, backoff
from worker.stops import STOP_TYPES, stopping

log = logging.getLogger("cutout.worker")


def keep_input(ctx: context.WorkerContext, job: JobRecord, data: bytes) -> None:
    """Store a URL job's input beside the job's other objects (deleted with it), so a
    corrected mask is rendered on the very bytes the model saw, and the corrections
    export has them, whatever the URL answers later."""
    if (job.source or {}).get("kind") != "url":
        return
    fmt = imagecheck.sniff(data)
    ctype = imagecheck.CONTENT_TYPES.get(fmt or "", "application/octet-stream")
    ctx.storage.put(keys.input_key(str(job.tenant), job.id), data, ctype)


def stored_input_key(job: JobRecord) -> str:
    """Where the job's input lies: its upload, or its own input key (URL jobs too)."""
    return job.input_key or keys.input_key(str(job.tenant), job.id)


def correct_job(self: Task, job_id: str, correction_id: str) -> str:
    """Render correction ``correction_id`` of ``job_id`` (see the module doc)."""
    ctx = context.get()
    try:
        return _correct(ctx, job_id, correction_id)
    except STOP_TYPES:
        raise  # the message is redelivered; the correction stays pending
    except Retry:
        raise
    except CutoutError as exc:
        if stopping(exc):
            raise SystemExit(1) from exc
        if exc.transient and self.request.retries < TRANSIENT_RETRIES:
            count_retry(ctx, exc.code)
            raise self.retry(countdown=backoff(self.request.retries), exc=exc) from exc
        return _failed(ctx, job_id, correction_id, exc)
    except SoftTimeLimitExceeded:
        limit = ctx.settings.task_time_limit
        late = ProcessingTimeout(f"rendering the correction took longer than {limit}s")
        return _failed(ctx, job_id, correction_id, late)
    except Exception as exc:
        if stopping(exc):
            raise SystemExit(1) from exc
        log.exception("unexpected error while rendering a correction", extra={"job_id": job_id})
        error = ProcessingFailed("rendering the corrected mask failed unexpectedly")
        return _failed(ctx, job_id, correction_id, error)


def _failed(ctx: context.WorkerContext, job_id: str, correction_id: str, error: CutoutError) -> str:
    job = ctx.store.get_job(job_id)
    correction = (job.correction if job is not None else None) or {}
    failed = {**correction, "status": "failed", "finished_at": now_iso()}
    failed["error"] = error.to_job_error()
    if ctx.store.correction_records().fail(job_id, correction_id, failed):
        _count(ctx, "failed")
    log.info("correction failed", extra={"job_id": job_id, "error": error.code})
    return "failed"


def _count(ctx: context.WorkerContext, outcome: str) -> None:
    """Count a finished correction in ``cutout_corrections`` (never raises)."""
    try:
        ctx.store.record_correction(outcome)
    except Exception:  # noqa: BLE001 - metrics never fail a correction
        log.debug("could not count a correction")


def _read(ctx: context.WorkerContext, key: str, what: str) -> bytes:
    try:
        return ctx.storage.get(key, max_bytes=ctx.settings.max_upload_bytes)
    except NotFound:
        raise UploadNotFound(f"{what} is no longer in storage (deleted, or expired)") from None


def _correct(ctx: context.WorkerContext, job_id: str, correction_id: str) -> str:
    job = ctx.store.get_job(job_id)
    correction = (job.correction if job is not None else None) or {}
    if job is None or correction.get("id") != correction_id:
        return "superseded"
    if correction.get("status") == "succeeded":
        # a run that died between recording and announcing: the event is claimed once
        webhooks.after_job_corrected(ctx, job, int(correction["version"]))
        return "already-finished"
    if correction.get("status") != "pending":
        return "already-finished"
    begin = time.monotonic()
    settings = ctx.settings
    options = Options.from_stored(job.options or {})
    data = _read(ctx, stored_input_key(job), "the job's input")
    mask = _read(ctx, correction["mask"], "the corrected mask")
    background = read_background(ctx, str(job.tenant), options)
    result, grey = ctx.engine.rerender(data, mask, options, limits=settings, background=background)
    del data, mask, background
    tenant, version = str(job.tenant), int(correction["version"])
    key = keys.corrected_result_key(tenant, job_id, correction_id, options.extension)
    ctx.storage.put(key, result.data, result.content_type)
    from worker.engine.imageio import encode_png  # the engine loads in the pool child only

    grey_key = keys.grey_mask_key(tenant, job_id, correction_id)
    ctx.storage.put(grey_key, encode_png(grey), "image/png")
    previous = job.result or {}
    newest = {
        **previous,
        "key": key,
        "content_type": result.content_type,
        "width": result.width,
        "height": result.height,
        "bytes": len(result.data),
        "subject": result.subject,
        "foreground": result.foreground,
        "version": version,
        "corrected": True,
        "mask_key": grey_key,
        "input_size": list(result.input_size or previous.get("input_size") or ()) or None,
    }
    done = {**correction, "status": "succeeded", "finished_at": now_iso(), "error": None}
    done["mask_key"] = grey_key
    if not ctx.store.correction_records().finish(job_id, tenant, correction_id, newest, done):
        return "superseded"
    _count(ctx, "succeeded")
    webhooks.after_job_corrected(ctx, job, version)
    took = round((time.monotonic() - begin) * 1000)
    log.info("correction rendered", extra={"job_id": job_id, "version": version, "ms": took})
    return "succeeded"
