"""``/v1/jobs``: submit one image, poll it, fetch its result, cancel or delete it."""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Blueprint, Response, g, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from api.capabilities import check_fast
from api.errors import JobRunning, NoResult
from api.fields import form_option_values, parse_webhook
from api.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_PARAMETER
from api.idempotency import idempotent
from api.intake import job_from_bytes, job_from_upload, job_from_url, read_limited
from api.jsonbody import request_json
from api.models import model_check
from api.openapi import doc
from api.result_headers import QUALITY_DOC, expose, quality_headers
from api.services import Services, current
from api.versions import OPENAPI_PARAMETER as VERSION_PARAMETER
from api.versions import newest_version, result_version
from shared.contract.options import EXTENSIONS, parse_options
from shared.contract.shapes import public_job
from shared.contract.shapes.jsontext import parse_metadata
from shared.contract.shapes.records import JobRecord
from shared.contract.shapes.requests import JobCreate, read_body
from shared.contract.tasks import ANNOUNCE, WEBHOOKS
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.ids import now_iso, valid_id
from shared.s3 import keys

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

RESULT_URL_EXPIRY = 300  # seconds a ?redirect=1 signed URL stays valid


def services() -> Services:
    return current()


def load_job(job_id: str) -> JobRecord:
    """The caller's job, or NotFound (unknown, malformed and other tenants' ids alike)."""
    if not valid_id(job_id, "job"):
        raise NotFound("no such job")
    job = services().store.get_job(job_id, g.tenant)
    if job is None:
        raise NotFound("no such job")
    g.job_id = job_id
    return job


def accepted(job: JobRecord) -> Response:
    g.job_id = job.id
    response = Response(json.dumps(public_job(job)), status=202, mimetype="application/json")
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response


@bp.post("")
@doc(
    summary="Submit one image",
    description="Multipart with an `image` file and option fields (plus `webhook_url` and "
    "`metadata` as a JSON string), or JSON with `upload_key` (from POST /v1/uploads) or "
    "`image_url`, and `options`. The format is judged from the bytes; size, pixel count "
    "and dimensions are checked before anything is decoded.",
    tags=["jobs"],
    request={"multipart/form-data": "JobMultipart", "application/json": "JobJson"},
    parameters=[IDEMPOTENCY_PARAMETER],
    responses={
        202: {"description": "queued", "schema": "Job", "headers": {"Location": "/v1/jobs/{id}"}},
        409: {"description": "idempotency_in_progress (retry shortly)", "problem": True},
        429: {"description": "rate_limited or queue_full (see Retry-After)", "problem": True},
        400: {"description": "malformed request (invalid_request)", "problem": True},
        404: {"description": "upload_key of no upload of yours (not_found)", "problem": True},
        413: {"description": "payload_too_large", "problem": True},
        415: {"description": "unsupported_format", "problem": True},
        422: {
            "description": "invalid_option, invalid_image, image_too_large, "
            "upload_not_found, url_not_allowed, idempotency_key_reused",
            "problem": True,
        },
        503: {"description": "unavailable (Redis, storage or the queue)", "problem": True},
    },
)
def create_job() -> Response:
    # Idempotency-Key (api/idempotency.py): a repeat answers the job the key created
    with idempotent(services(), g.tenant) as slot:
        if slot.replay is not None:
            return accepted(load_job(slot.replay.id))
        job = _create_job()
        slot.save(job.id, f"/v1/jobs/{job.id}")
    return accepted(job)


def _create_job() -> JobRecord:
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        return _create_from_multipart()
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return _create_from_json()
    raise InvalidRequest(
        "send multipart/form-data with an `image` file, or application/json with "
        f"`upload_key` or `image_url` (got Content-Type {mimetype or 'none'!r})"
    )


def _create_from_multipart() -> JobRecord:
    svc = services()
    form = request.form
    upload = request.files.get("image")
    if upload is None:
        others = ", ".join(sorted(request.files)) or "none"
        raise InvalidRequest(f"the multipart body has no `image` file (file fields: {others})")
    options = parse_options(form_option_values(form), models=model_check())
    check_fast(svc, [options])
    metadata = parse_metadata(form.get("metadata"))
    webhook = parse_webhook(form.get("webhook_url"), svc.settings)
    data = read_limited(upload.stream, svc.settings.max_upload_bytes)
    return job_from_bytes(svc, g.tenant, data, options, metadata=metadata, webhook=webhook)


def _create_from_json() -> JobRecord:
    svc = services()
    # members, the one-of input and each member's kind: the model (OpenAPI JobJson)
    body = read_body(JobCreate, request_json())
    options = parse_options(body.options or {}, models=model_check())
    check_fast(svc, [options])
    metadata = body.metadata or {}
    webhook = parse_webhook(body.webhook_url, svc.settings)
    if body.upload_key is not None:
        return job_from_upload(
            svc, g.tenant, body.upload_key, options, metadata=metadata, webhook=webhook
        )
    assert body.image_url is not None  # the model's one-of rule
    return job_from_url(svc, g.tenant, body.image_url, options, metadata=metadata, webhook=webhook)


@bp.get("/<job_id>")
@doc(
    summary="Job status",
    tags=["jobs"],
    responses={
        200: {"description": "the job", "schema": "Job"},
        404: {"description": "not_found", "problem": True},
    },
)
def get_job(job_id: str) -> Response:
    job = load_job(job_id)
    return Response(json.dumps(public_job(job)), mimetype="application/json")


@bp.get("/<job_id>/result")
@doc(
    summary="The result image",
    description="Streams the result; `?redirect=1` answers 302 to a signed storage URL "
    "(valid 5 minutes). 409 `not_finished` while queued or processing (with "
    "`job_status`), 409 `no_result` for a failed or canceled job (with its `error`). "
    "`?version=N`: an earlier version of a corrected job's result (PUT .../mask).",
    tags=["jobs"],
    parameters=[
        {"name": "redirect", "in": "query", "required": False, "schema": {"type": "boolean"}},
        VERSION_PARAMETER,
    ],
    responses={
        200: {
            "description": "the image (a zip for `format=zip`), with the quality score's headers",
            "content": {"image/*": None, "application/zip": None},
            "headers": QUALITY_DOC,
        },
        302: {
            "description": "redirect to a signed storage URL",
            "headers": {"Location": "signed URL"},
        },
        400: {"description": "`version` is not a whole number (invalid_request)", "problem": True},
        404: {
            "description": "not_found (also when the result was deleted or expired, or the "
            "job has no such `version`)",
            "problem": True,
        },
        409: {"description": "not_finished or no_result", "problem": True},
    },
)
def get_result(job_id: str) -> BaseResponse:
    job = load_job(job_id)
    status = job.status
    if status in ("queued", "processing"):
        raise Conflict(f"the job is {status}; poll /v1/jobs/{job_id}", job_status=status)
    if status != "succeeded" or not (job.result or {}).get("key"):
        raise NoResult(f"the job is {status} and has no result", job_status=status, error=job.error)
    result = result_version(job, request.args.get("version"))
    key = result["key"]
    extension = EXTENSIONS.get((job.options or {}).get("format", ""), "") or (
        key.rsplit(".", 1)[-1] if "." in key else "bin"
    )
    version = newest_version(result)
    filename = f"{job_id}.{extension}" if version == 1 else f"{job_id}.v{version}.{extension}"
    storage = services().storage
    if request.args.get("redirect", "").lower() in ("1", "true", "yes"):
        return redirect(storage.presign_get(key, RESULT_URL_EXPIRY, filename), code=302)
    chunks = storage.stream(key)
    # the first read raises NotFound/StorageError here, as a proper problem response,
    # instead of in the middle of a 200
    first = next(chunks, b"")

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    response = Response(body(), mimetype=result.get("content_type") or "application/octet-stream")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    if result.get("bytes"):
        response.headers["Content-Length"] = str(result["bytes"])
    response.headers.update(quality_headers(result))
    return expose(response)


@bp.delete("/<job_id>")
@doc(
    summary="Cancel a job if not started; delete its stored input and result",
    description="The record stays (status `canceled`, or its terminal status) so polling "
    "still answers until retention expires; the bytes are deleted at once. A job a "
    "worker is processing answers 409 `job_running`.",
    tags=["jobs"],
    responses={
        204: {"description": "canceled and/or deleted"},
        404: {"description": "not_found", "problem": True},
        409: {"description": "job_running", "problem": True},
    },
)
def delete_job(job_id: str) -> Response:
    svc = services()
    job = load_job(job_id)
    if job.status == "queued":
        transition = svc.store.transition(job_id, "canceled", ["queued"], finished_at=now_iso())
        if not transition.applied:
            job = load_job(job_id)  # a worker took it meanwhile
        elif transition.batch_completed:
            # this cancel finished its batch: a worker sends batch.completed
            svc.celery.send_task(ANNOUNCE, args=[job_id, "canceled", True], queue=WEBHOOKS)
    if job.status == "processing":
        raise JobRunning(
            "a worker is processing this job; delete it once it has finished",
            job_status="processing",
        )
    tenant = str(job.tenant)
    for prefix in keys.job_prefixes(tenant, job_id):
        svc.storage.delete_prefix(prefix)
    # a direct upload is this job's input too; its key carries the tenant (checked at intake)
    upload = job.input_key or ""
    if keys.is_upload_of(upload, tenant):
        svc.storage.delete_prefix(upload)
    return Response(status=204)
