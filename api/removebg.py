"""``POST /v1.0/removebg``: a drop-in for remove.bg's API (docs/removebg.md).

remove.bg's parameters are mapped onto our options (api/removebg_params.py); the
request becomes an ordinary interactive job through the same intake as ``/api/remove``
(limits, tenants, rate limit, queue cap) and the API waits for it the same bounded time
(``CUTOUT_SYNC_TIMEOUT``). The answer is remove.bg's: the image with ``X-Width``,
``X-Height``, ``X-Foreground-*`` (and ``X-Type``, ``X-Credits-Charged: 0``), or with
``Accept: application/json`` ``{"data": {"result_b64", "foreground_top", ...}}``; every
error is ``{"errors": [{"title", "code", "detail"}]}`` with remove.bg's status codes
(400 for anything wrong with the request or image, 402, 403 for the key, 429), wrong
methods (405) and other ``/v1.0/`` paths (404) included.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any, cast

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from api.errors import error_headers, from_http_exception
from api.intake import check_image, job_from_bytes, job_from_url, read_limited
from api.jsonbody import request_json
from api.models import model_check
from api.openapi import doc, not_an_operation
from api.rembg_compat import finished_job
from api.removebg_request import FILES, RemoveBgRequest, read_removebg
from api.result_headers import QUALITY_DOC, expose, quality_headers
from api.services import current
from shared.contract.shapes.records import JobRecord
from shared.errors import CutoutError, InvalidRequest, MethodNotAllowed, NotFound
from shared.ids import new_id
from shared.s3 import keys

bp = Blueprint("removebg", __name__, url_prefix="/v1.0")


class UnknownForeground(CutoutError):
    """remove.bg's answer when no subject is found; ours only on /v1.0/removebg."""

    code = "unknown_foreground"
    status = 400
    title = "Could not identify foreground in image"


class InvalidBase64(InvalidRequest):
    """``image_file_b64`` that is not base64 (before it was "the input is empty")."""

    code = "invalid_base64"
    status = 400
    title = "The base64 is not valid"


# remove.bg's route takes POST alone; OPTIONS is Flask's automatic answer
ALLOWED = "OPTIONS, POST"
OTHER_METHODS = ["GET", "HEAD", "PUT", "DELETE", "PATCH"]


def removebg_status(error: CutoutError) -> int:
    """remove.bg's status for one of our errors: 403 for the key; 402, 404 (a path that
    is not remove.bg's route), 405, 429 and 5xx as they are; every other client error
    400."""
    if error.status == 401:
        return 403
    if error.status in (402, 404, 405, 429) or error.status >= 500:
        return error.status
    return 400


def error_response(error: CutoutError) -> Response:
    body: dict[str, Any] = {
        "errors": [{"title": error.message, "code": error.code, "detail": error.title}]
    }
    option = error.extra.get("option") or error.extra.get("field")
    if option:
        body["errors"][0]["source"] = {"parameter": option}
    response = Response(
        json.dumps(body), status=removebg_status(error), mimetype="application/json"
    )
    for name, value in error_headers(error).items():
        if name.lower() != "www-authenticate":
            response.headers[name] = value
    return response


@bp.errorhandler(CutoutError)
def _cutout_error(error: CutoutError) -> Response:
    return error_response(error)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return error_response(from_http_exception(exc))


@bp.url_value_preprocessor
def _method_first(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A wrong method or an unknown /v1.0/ path is answered before the key is checked
    (url_value_preprocessor runs before the app's before_request, where the key is), in
    remove.bg's shape: the method is wrong whatever the key."""
    if endpoint == "removebg.wrong_method":
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.path}: use POST")
        error.headers = {"Allow": ALLOWED}  # type: ignore[attr-defined]
        raise error
    if endpoint == "removebg.unknown_path":
        raise NotFound(f"no such endpoint: {request.path} (this server has POST /v1.0/removebg)")


# no automatic OPTIONS on these rules: OPTIONS stays the POST rule's (Allow: OPTIONS, POST)
_WRONG = {"methods": OTHER_METHODS, "endpoint": "wrong_method", "provide_automatic_options": False}


@bp.route("/removebg", **_WRONG)
@bp.route("/removebg/", **_WRONG)
@not_an_operation
def _wrong_method() -> Response:  # pragma: no cover (answered by _method_first)
    raise MethodNotAllowed(f"{request.method} is not allowed: use POST")


_UNKNOWN = {"methods": [*OTHER_METHODS, "POST", "OPTIONS"], "endpoint": "unknown_path"}


@bp.route("/", **_UNKNOWN)
@bp.route("/<path:rest>", **_UNKNOWN)
@not_an_operation
def _unknown_path(rest: str = "") -> Response:  # pragma: no cover (answered by _method_first)
    raise NotFound("no such endpoint")


@bp.after_request
def _ratelimit_headers(response: Response) -> Response:
    """remove.bg's X-RateLimit-* beside our RateLimit-* (its reset is a Unix time)."""
    decision = g.get("rate_limit")
    if decision is not None:
        response.headers["X-RateLimit-Limit"] = str(decision.burst)
        response.headers["X-RateLimit-Remaining"] = str(decision.remaining)
        response.headers["X-RateLimit-Reset"] = str(int(time.time()) + decision.reset)
    return response


def _params() -> dict[str, Any]:
    """remove.bg's parameters of a multipart, form or JSON request, as sent (the files of
    a multipart body as their bytes), for :class:`RemoveBgRequest`."""
    limit = current().settings.max_upload_bytes
    mimetype = request.mimetype
    if mimetype == "application/json" or mimetype.endswith("+json"):
        # bounded like every client JSON (api/jsonbody.py): 100,000 `[` were a 500 here
        try:
            body = request_json()
        except InvalidRequest:
            body = None
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object of remove.bg's parameters")
        return dict(body)
    if mimetype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise InvalidRequest(
            "send multipart/form-data, application/x-www-form-urlencoded or application/json "
            f"(got Content-Type {mimetype or 'none'!r})"
        )
    params: dict[str, Any] = dict(request.form.items())
    for name in FILES:
        upload = request.files.get(name)
        if upload is not None:
            params[name] = read_limited(upload.stream, limit)
    return params


def _decode_b64(value: Any, limit: int, name: str = "image_file_b64") -> bytes:
    """The bytes of a base64 parameter: standard or URL-safe alphabet, line breaks and
    missing padding allowed, a ``data:`` URL prefix allowed; anything else (a character
    outside the alphabet, a bad length, nothing at all) is ``invalid_base64``."""
    text = str(value).strip()
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]  # a data URL
    if len(text) > limit * 4 // 3 + 8:
        from shared.errors import PayloadTooLarge

        raise PayloadTooLarge(f"the image is larger than {limit} bytes")
    text = re.sub(r"[\t\n\r ]+", "", text).translate(_URLSAFE).rstrip("=")
    bad = re.search(r"[^A-Za-z0-9+/]", text)
    if bad:
        raise InvalidBase64(
            f"{name} is not valid base64: {bad.group()!r} at position {bad.start()} is "
            "not a base64 character",
            field=name,
        )
    if not text or len(text) % 4 == 1:
        raise InvalidBase64(
            f"{name} is not valid base64: "
            + ("it is empty" if not text else f"{len(text)} characters cannot be base64"),
            field=name,
        )
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):  # pragma: no cover (checked above)
        raise InvalidBase64(f"{name} is not valid base64", field=name) from None


# URL-safe base64 (RFC 4648 section 5) read as the standard alphabet
_URLSAFE = str.maketrans("-_", "+/")


# the `Accept: application/json` answer, as remove.bg sends it
JSON_200 = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "object",
            "required": ["result_b64"],
            "properties": {
                "result_b64": {"type": "string", "contentEncoding": "base64"},
                **{
                    f"foreground_{side}": {"type": "integer"}
                    for side in ("top", "left", "width", "height")
                },
            },
            "additionalProperties": False,
        }
    },
    "additionalProperties": False,
}


@bp.post("/removebg")
@doc(
    summary="Remove the background (remove.bg-compatible)",
    description="remove.bg's `POST /v1.0/removebg`: `image_file` (multipart), "
    "`image_file_b64` or `image_url`, with remove.bg's parameters (docs/removebg.md), and "
    "two of ours: `model` and `score` (`basic` or `full`: the quality score, answered in "
    "the `Cutout-Score*` headers in both forms of the answer). The "
    "key goes in `X-Api-Key` (or `Authorization: Bearer`). Answers the image, or "
    '`{"data": {"result_b64", "foreground_top", ...}}` with `Accept: application/json`; '
    'errors are `{"errors": [{"title", "code", "detail"}]}`.',
    tags=["remove.bg"],
    request={
        "multipart/form-data": "RemoveBgMultipart",
        "application/json": "RemoveBgJson",
        "application/x-www-form-urlencoded": "RemoveBgForm",
    },
    responses={
        200: {
            "description": "the image (X-Width, X-Height, X-Foreground-*), or with "
            "`Accept: application/json` its base64 and the foreground's box",
            "content": {"image/*": None, "application/zip": None, "application/json": JSON_200},
            "headers": {"Cutout-Job-Id": "the job that made it", **QUALITY_DOC},
        },
        400: {"description": "invalid parameter or image: {errors: [...]}"},
        403: {"description": "missing or invalid API key: {errors: [...]}"},
        429: {"description": "rate limited or queue full: {errors: [...]}"},
        500: {"description": "the job failed (processing_failed, model_integrity): {errors}"},
        503: {
            "description": "unavailable, storage_error, or model_unavailable (a custom model "
            "removed or registered again after submit): {errors: [...]}"
        },
        504: {"description": "processing_timeout (Location: the job)"},
    },
)
def removebg() -> Response:
    svc = current()
    tenant = g.tenant
    job_id = new_id("job")
    # beside the job's input: deleted with it when the job expires. Part of the options
    # from the start: it makes the result opaque (format auto and jpg need that)
    body = read_removebg(
        _params(), models=model_check(), bg_upload_key=keys.background_key(tenant, job_id)
    )
    background_key = body.options.bg_upload_key
    if body.bg_image_file is not None:
        try:
            check_image(body.bg_image_file, svc.settings)
        except CutoutError as exc:
            # the same checks as the photo's: say which file failed them
            exc.extra.setdefault("field", "bg_image_file")
            raise
    image = body.image_file
    if body.image_file_b64 is not None:
        image = _decode_b64(body.image_file_b64, svc.settings.max_upload_bytes)
    elif body.source == "image_file" and image is None:
        raise InvalidRequest(
            "image_file must be a file of a multipart body (or send image_file_b64)",
            field="image_file",
        )
    if background_key is not None and body.bg_image_file is not None:  # both or neither
        svc.storage.put(background_key, body.bg_image_file, "application/octet-stream")
    try:
        if body.image_url is not None:
            url = body.image_url
            job = job_from_url(svc, tenant, url, body.options, field="image_url", job_id=job_id)
        else:
            # image_file_b64 decoded above, or an image_file part checked there
            data = cast("bytes", image)
            job = job_from_bytes(svc, tenant, data, body.options, job_id=job_id)
    except CutoutError:
        if background_key is not None:
            svc.storage.delete_prefix(keys.job_prefixes(tenant, job_id)[0])
        raise
    return _answer(finished_job(job), body)


@bp.post("/removebg/", endpoint="removebg_slash")
@not_an_operation
def removebg_slash() -> Response:
    """The same route with a trailing slash (some clients add one): the same answers."""
    return removebg()


def _answer(job: JobRecord, body: RemoveBgRequest) -> Response:
    svc = current()
    result = job.result or {}
    if not result.get("subject"):
        raise UnknownForeground("Could not identify foreground in image")
    foreground = result.get("foreground") or {"left": 0, "top": 0, "width": 0, "height": 0}
    data = svc.storage.get(result["key"])
    headers = {
        "X-Width": str(result["width"]),
        "X-Height": str(result["height"]),
        "X-Foreground-Top": str(foreground["top"]),
        "X-Foreground-Left": str(foreground["left"]),
        "X-Foreground-Width": str(foreground["width"]),
        "X-Foreground-Height": str(foreground["height"]),
        "X-Credits-Charged": "0",
        "Cutout-Job-Id": job.id,
        # ours, not remove.bg's: result.quality (docs/quality.md); headers only, so
        # remove.bg's JSON answer keeps its schema
        **quality_headers(result),
    }
    if body.type != "auto" and body.type_level != "none":
        headers["X-Type"] = body.type
    if request.accept_mimetypes.best == "application/json":
        answer = {
            "data": {
                "result_b64": base64.b64encode(data).decode("ascii"),
                "foreground_top": foreground["top"],
                "foreground_left": foreground["left"],
                "foreground_width": foreground["width"],
                "foreground_height": foreground["height"],
            }
        }
        response = Response(json.dumps(answer), mimetype="application/json")
    else:
        response = Response(data, mimetype=result.get("content_type") or "image/png")
    response.headers.update(headers)
    return expose(response)
