"""``/api/remove``: a drop-in for rembg's server (``rembg s``), answering the image itself.

rembg's parameter names are mapped onto ours (``a`` → ``alpha_matting``, ``om`` →
``mask_only``, ``bgc`` → ``bg_color`` in rembg's ``(r, g, b, a)`` form, …); our own
option names work too. The request becomes an ordinary interactive job, so the pixels
come from the same worker and engine as ``/v1/jobs``; the API waits for it up to
``CUTOUT_SYNC_TIMEOUT`` and then answers 504 ``processing_timeout`` with the job's
``Location`` so the client can keep polling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, g, request

from api.errors import NoResult
from api.intake import job_from_bytes, job_from_url, read_limited
from api.models import model_check
from api.openapi import doc
from api.result_headers import QUALITY_DOC, expose, quality_headers
from api.services import current
from shared.contract.options import Options, parse_options
from shared.contract.shapes.records import JobRecord
from shared.errors import CutoutError, InvalidRequest, ProcessingTimeout, error_for_code

bp = Blueprint("rembg", __name__, url_prefix="/api")

# rembg's parameter → ours
REMBG_NAMES = {
    "model": "model",
    "a": "alpha_matting",
    "af": "alpha_matting_foreground_threshold",
    "ab": "alpha_matting_background_threshold",
    "ae": "alpha_matting_erode_size",
    "om": "mask_only",
    "ppm": "post_process",
    "bgc": "bg_color",
}
# sent by rembg clients, meaningless for our models: accepted and ignored
IGNORED = {"extras", "url"}

_PARAMS_DOC = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": f"rembg's `{name}` = our `{ours}`",
    }
    for name, ours in REMBG_NAMES.items()
] + [
    {
        "name": "score",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["basic", "full"], "default": "basic"},
        "description": "ours (rembg has none): how the cutout's quality score is made; "
        "the answer's Cutout-Score* headers carry it (docs/quality.md)",
    }
]


def parse_bgc(value: str) -> str | None:
    """rembg's ``bgc`` as its clients send it: ``(255, 255, 255, 255)``, ``[255,255,255]``,
    ``255,255,255,255`` (or our ``#RRGGBB[AA]``); empty → None."""
    text = re.sub(r"[\s()\[\]]", "", value)
    return text or None


def rembg_options(params: Mapping[str, Any]) -> Options:
    """Options from rembg's parameters (and ours); InvalidOption names the bad one."""
    values: dict[str, Any] = {}
    for name, value in params.items():
        if name in IGNORED:
            continue
        ours = REMBG_NAMES.get(name, name)
        if ours == "bg_color" and isinstance(value, str):
            value = parse_bgc(value)
        if value == "" and ours not in ("bg_color", "canvas"):
            continue  # an empty form field means "the default", as in rembg
        values[ours] = value
    return parse_options(values, models=model_check())


def _params() -> dict[str, Any]:
    params: dict[str, Any] = dict(request.args.items())
    params.update(request.form.items())  # form fields win over the query, as rembg's POST
    return params


def finished_job(job: JobRecord) -> JobRecord:
    """Wait (up to CUTOUT_SYNC_TIMEOUT) for ``job`` and return its succeeded record.

    Raises ProcessingTimeout (it goes on; ``Location`` names it), the job's own error
    when it failed, NoResult when it was canceled.
    """
    svc = current()
    job_id = job.id
    g.job_id = job_id
    location = f"/v1/jobs/{job_id}"
    # the store waits in slices shorter than its client's socket timeout itself
    if not svc.store.wait_finished(job_id, svc.settings.sync_timeout):
        timeout = ProcessingTimeout(
            f"the job did not finish within {svc.settings.sync_timeout:g}s; it goes on: "
            f"poll {location}",
            job_id=job_id,
        )
        timeout.headers = {"Location": location}  # type: ignore[attr-defined]
        raise timeout
    done = svc.store.get_job(job_id)
    status = done.status if done is not None else None
    if done is not None and status == "succeeded" and (done.result or {}).get("key"):
        return done
    error_info = (done.error if done is not None else None) or {}
    error: CutoutError
    if status == "failed" and error_info.get("code"):
        error = error_for_code(error_info["code"], error_info.get("message"))
    else:
        error = NoResult(f"the job is {status}", job_status=status)
    error.headers = {"Location": location}  # type: ignore[attr-defined]
    raise error


def subject_headers(result: dict[str, Any]) -> dict[str, str]:
    """``result.subject`` as headers: the box in the original's pixels and its share."""
    subject = result.get("subject")
    if not subject:
        return {}
    names = ("left", "top", "width", "height", "share")
    return {f"Cutout-Subject-{name.title()}": str(subject[name]) for name in names}


def _wait_and_answer(job: JobRecord) -> Response:
    svc = current()
    result = finished_job(job).result or {}
    data = svc.storage.get(result["key"])
    response = Response(data, mimetype=result.get("content_type") or "image/png")
    response.headers["Cutout-Job-Id"] = job.id
    response.headers.update(subject_headers(result))
    response.headers.update(quality_headers(result))
    return expose(response)


#: what both routes may answer besides their own 413 / 422
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the image; `Cutout-Job-Id`, `Cutout-Subject-*` and the quality "
        "score's headers",
        "content": {"image/*": None, "application/zip": None},
        "headers": {
            "Cutout-Job-Id": "the job that made it (GET /v1/jobs/{id})",
            **QUALITY_DOC,
        },
    },
    400: {"description": "invalid_request", "problem": True},
    415: {"description": "unsupported_format (the file, or what the URL gave)", "problem": True},
    429: {"description": "rate_limited or queue_full (see Retry-After)", "problem": True},
    503: {"description": "unavailable (Redis, storage or the queue)", "problem": True},
    504: {"description": "processing_timeout (Location: the job)", "problem": True},
}


@bp.post("/remove")
@doc(
    summary="Remove the background now (rembg-compatible)",
    description="Multipart `file` with rembg's parameters as form fields or in the query. "
    "Waits for the result up to CUTOUT_SYNC_TIMEOUT.",
    tags=["rembg"],
    request={"multipart/form-data": "RemoveMultipart"},
    parameters=_PARAMS_DOC,
    responses={
        **_ANSWERS,
        413: {"description": "payload_too_large", "problem": True},
        422: {"description": "invalid_option, invalid_image, image_too_large", "problem": True},
    },
)
def remove_post() -> Response:
    svc = current()
    if request.mimetype != "multipart/form-data":
        raise InvalidRequest("send multipart/form-data with a `file` field (as rembg does)")
    upload = request.files.get("file")
    if upload is None:
        raise InvalidRequest("the multipart body has no `file` field")
    options = rembg_options(_params())
    data = read_limited(upload.stream, svc.settings.max_upload_bytes)
    return _wait_and_answer(job_from_bytes(svc, g.tenant, data, options))


@bp.get("/remove")
@doc(
    summary="Remove the background of an image at a URL now (rembg-compatible)",
    description="`url` is fetched by the worker under the same guard as `image_url`.",
    tags=["rembg"],
    parameters=[
        {
            "name": "url",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "format": "uri"},
        },
        *_PARAMS_DOC,
    ],
    responses={
        **_ANSWERS,
        422: {
            "description": "invalid_option, url_not_allowed, url_fetch_failed, invalid_image, "
            "image_too_large",
            "problem": True,
        },
    },
)
def remove_get() -> Response:
    svc = current()
    url = request.args.get("url")
    if not url:
        raise InvalidRequest("the `url` query parameter is required", field="url")
    options = rembg_options(_params())
    return _wait_and_answer(job_from_url(svc, g.tenant, url, options, field="url"))
