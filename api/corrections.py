"""``PUT /v1/jobs/{id}/mask``: a corrected mask for a succeeded job (docs/api.md,
"Corrected masks").

The mask is checked here, before anything changes: the same limits as an upload (bytes,
format, pixels and sides, the job's memory) and the size rules of shared/contract/maskcheck.py
against the job's input. It is then stored, made the job's pending correction (one
atomic step that also refuses a job that is not ``succeeded`` or has a correction
pending: shared/stores/corrections.py), and a worker renders it (worker/corrections.py).
A refused mask changes nothing: the result and its version stay.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, g, request

from api.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_PARAMETER
from api.idempotency import idempotent
from api.intake import read_limited
from api.jobs import accepted, load_job
from api.jsonbody import body_bytes
from api.models import model_check
from api.openapi import doc
from api.services import Services, current
from api.versions import OPENAPI_PARAMETER as VERSION_PARAMETER
from api.versions import result_version
from shared.contract import imagecheck, maskcheck
from shared.contract.options import parse_options
from shared.contract.settings import Settings
from shared.contract.shapes.records import JobRecord
from shared.contract.tasks import CORRECT_JOB, INTERACTIVE
from shared.errors import (
    CorrectionPending,
    CutoutError,
    InvalidRequest,
    JobNotSucceeded,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UploadNotFound,
)
from shared.ids import new_id, now_iso
from shared.s3 import keys

log = logging.getLogger("cutout.api")

bp = Blueprint("corrections", __name__, url_prefix="/v1/jobs")

#: the raw body's content types (anything else: multipart with a ``mask`` file)
RAW_TYPES = ("image/png", "application/octet-stream")
#: EXIF orientations that swap the sides of a decoded (upright) image
_SWAPPED = (5, 6, 7, 8)


def stale_after(settings: Settings) -> float:
    """Seconds after which a pending correction counts as lost (its message gone with a
    Redis crash) and no longer blocks a new one: longer than any run, its redelivery
    (the broker's visibility timeout) and its transient retries."""
    return 4.0 * settings.task_time_limit + 600.0


@bp.put("/<job_id>/mask")
@doc(
    summary="Correct a succeeded job's mask; its result is rendered again",
    description="The body is the mask: a PNG, grey or with an alpha channel (the alpha is "
    "the mask), sent as `image/png` (or `application/octet-stream`), or as the `mask` file "
    "of a multipart form. Its size is the input's, another size of the input's shape, or "
    "320x320; it is scaled to the processed image as the model's mask is. A worker then "
    "renders the result again with the job's own options: `result.version` goes up by "
    "one, `result.corrected` becomes true, earlier versions stay at "
    "`GET /v1/jobs/{id}/result?version=N`, and `job.corrected` is sent to the job's "
    "`webhook_url`. Until then `correction.status` is `pending` and `result` the previous "
    "version. A refused mask changes nothing.",
    tags=["jobs"],
    request={
        "image/png": {"type": "string", "contentEncoding": "binary"},
        "multipart/form-data": "MaskMultipart",
    },
    parameters=[IDEMPOTENCY_PARAMETER],
    responses={
        202: {
            "description": "accepted: `correction.status` is `pending`",
            "schema": "Job",
            "headers": {"Location": "/v1/jobs/{id}"},
        },
        400: {"description": "no mask in the body (invalid_request)", "problem": True},
        404: {"description": "not_found (no such job of yours)", "problem": True},
        409: {
            "description": "job_not_succeeded (with `job_status`), correction_pending "
            "(see Retry-After), idempotency_in_progress",
            "problem": True,
        },
        413: {"description": "payload_too_large", "problem": True},
        415: {"description": "unsupported_format (the mask is not a PNG)", "problem": True},
        422: {
            "description": "invalid_image (empty, truncated or damaged), image_too_large, "
            "mask_size_mismatch, upload_not_found (the job's input is gone), "
            "idempotency_key_reused; each with `field: mask` where it is the mask",
            "problem": True,
        },
        503: {"description": "unavailable (Redis, storage or the queue)", "problem": True},
    },
)
def put_mask(job_id: str) -> Response:
    svc = current()
    # Idempotency-Key (api/idempotency.py): a repeat answers the job, no new version
    with idempotent(svc, g.tenant) as slot:
        if slot.replay is not None:
            return accepted(load_job(slot.replay.id))
        job = _correct(svc, job_id)
        slot.save(job.id, f"/v1/jobs/{job.id}")
    return accepted(job)


@bp.get("/<job_id>/mask")
@doc(
    summary="The corrected mask of a result version",
    description="The mask a corrected version was rendered from, as stored: a grey PNG of "
    "the input's size (the newest version, or `?version=N`). A version the model made "
    "(version 1) has no stored mask: 404 `not_found`.",
    tags=["jobs"],
    parameters=[VERSION_PARAMETER],
    responses={
        200: {"description": "the mask", "content_type": "image/png"},
        400: {"description": "`version` is not a whole number (invalid_request)", "problem": True},
        404: {
            "description": "not_found (no such job of yours or version, or the version was "
            "the model's)",
            "problem": True,
        },
        409: {"description": "job_not_succeeded (with `job_status`)", "problem": True},
    },
)
def get_mask(job_id: str) -> Response:
    job = load_job(job_id)
    if job.status != "succeeded":
        _refuse("status", job.status)
    result = result_version(job, request.args.get("version"))
    key = result.get("mask_key")
    if not key:
        raise NotFound(
            "this result version was made by the model: no corrected mask is stored for it",
            field="version",
        )
    chunks = current().storage.stream(key)
    first = next(chunks, b"")  # a missing object is a problem answer, not a broken 200

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    response = Response(body(), mimetype="image/png")
    response.headers["Content-Disposition"] = (
        f'inline; filename="{job_id}.mask.v{result.get("version") or 1}.png"'
    )
    return response


def _correct(svc: Services, job_id: str) -> JobRecord:
    job = load_job(job_id)
    _check_job(svc, job)
    data = _mask_bytes(svc.settings.max_upload_bytes)
    options = parse_options(job.options or {}, models=model_check())
    maskcheck.check_mask(data, input_size(svc, job), options, svc.settings)
    tenant, correction_id = str(job.tenant), new_id("cor")
    sent = keys.sent_mask_key(tenant, job_id, correction_id)
    svc.storage.put(sent, data, "image/png")
    correction = {
        "id": correction_id,
        "status": "pending",
        "requested_at": now_iso(),
        "finished_at": None,
        "error": None,
        "mask": sent,
        "requested": time.time(),
    }
    begun = svc.corrections.begin(job_id, tenant, correction, stale_after(svc.settings))
    if begun.outcome != "ok":
        with contextlib.suppress(CutoutError):
            svc.storage.delete_prefix(sent)
        _refuse(begun.outcome, begun.job_status)
    try:
        svc.celery.send_task(CORRECT_JOB, args=[job_id, correction_id], queue=INTERACTIVE)
    except Exception as exc:  # noqa: BLE001 - kombu/redis raise many types: the broker is down
        log.error("correction not queued for %s: %s", job_id, type(exc).__name__)
        error = Unavailable("the queue is unavailable; the correction was not started")
        failed: dict[str, Any] = {**correction, "version": begun.version, "status": "failed"}
        failed.update(finished_at=now_iso(), error=error.to_job_error())
        with contextlib.suppress(CutoutError):
            svc.corrections.fail(job_id, correction_id, failed)
        raise error from None
    return load_job(job_id)


def _check_job(svc: Services, job: JobRecord) -> None:
    """Refuse at once what the atomic step would refuse, before the body is read."""
    status = job.status
    if status != "succeeded":
        _refuse("status", status)
    pending = job.correction or {}
    fresh = time.time() - float(pending.get("requested") or 0) < stale_after(svc.settings)
    if pending.get("status") == "pending" and fresh:
        _refuse("pending", status)


def _refuse(outcome: str, status: str) -> None:
    if outcome == "missing":
        raise NotFound("no such job")
    if outcome == "status":
        raise JobNotSucceeded(
            f"the job is {status}; only a succeeded job's mask can be corrected",
            job_status=status,
        )
    error = CorrectionPending(
        "the job's previous correction is still being rendered; send this mask once "
        "`correction.status` is no longer pending"
    )
    error.headers = {"Retry-After": "2"}  # type: ignore[attr-defined]
    raise error


def _mask_bytes(limit: int) -> bytes:
    """The mask from the body: raw PNG bytes, or a multipart form's ``mask`` file."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("mask")
        if upload is None:
            others = ", ".join(sorted(request.files)) or "none"
            raise InvalidRequest(
                f"the multipart body has no `mask` file (file fields: {others})", field="mask"
            )
        return read_limited(upload.stream, limit)
    if request.mimetype not in RAW_TYPES:
        raise InvalidRequest(
            "send the mask as the body with Content-Type image/png, or as the `mask` file "
            f"of a multipart/form-data body (got Content-Type {request.mimetype or 'none'!r})",
            field="mask",
        )
    data = body_bytes()
    if len(data) > limit:
        raise PayloadTooLarge(f"the mask is larger than {limit} bytes")
    return data


def input_size(svc: Services, job: JobRecord) -> tuple[int, int]:
    """The job's input as decoded (upright), which the mask must fit: recorded with the
    result; for a job finished before sizes were recorded, read from the stored input's
    header (its EXIF orientation applied). Raises UploadNotFound when the input is no
    longer stored (deleted with DELETE /v1/jobs/{id}): nothing could be rendered."""
    size = (job.result or {}).get("input_size")
    key = job.input_key or keys.input_key(str(job.tenant), job.id)
    try:
        if size:
            svc.storage.head(key)
            return int(size[0]), int(size[1])
        data = svc.storage.get(key, max_bytes=svc.settings.max_upload_bytes)
    except NotFound:
        raise UploadNotFound(
            "the job's input is no longer in storage (deleted, or the job expired): "
            "its mask cannot be corrected"
        ) from None
    fmt = imagecheck.check_format(data)
    with imagecheck.open_header(data, fmt) as image:
        width, height = image.size
        with contextlib.suppress(Exception):
            if image.getexif().get(0x0112) in _SWAPPED:
                width, height = height, width
    return width, height
