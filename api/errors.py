"""One error handler: every failure leaves as RFC 9457 ``application/problem+json``.

:class:`~shared.errors.CutoutError` renders itself; werkzeug's HTTP exceptions (unknown
route, wrong method, body over ``MAX_CONTENT_LENGTH``) are mapped onto our codes; anything
else is logged with its traceback and answered as a bare 500 ``internal_error`` so that
no internal detail (paths, keys, library messages) reaches the client.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from shared.errors import (
    CutoutError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedFormat,
)

log = logging.getLogger("cutout.api")

PROBLEM_MIMETYPE = "application/problem+json"
# Retry-After of a 503 that sets none itself: a backing service that does not answer
# (Redis failing over to its replica: down-after-milliseconds, 5 s in deploy/, plus about
# a second of election; docs/operations.md) is usually back within this many seconds
UNAVAILABLE_RETRY_AFTER = 5


class JobRunning(CutoutError):
    """DELETE of a job a worker is processing: it cannot be canceled any more."""

    code = "job_running"
    status = 409
    title = "The job is being processed and cannot be canceled"


class NoResult(CutoutError):
    """GET of a result of a job that failed or was canceled (``error`` says why)."""

    code = "no_result"
    status = 409
    title = "The job finished without a result"


def error_headers(error: CutoutError, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers every answer of ``error`` carries, in any error shape: its own
    (``error.headers``), ``extra``, and a ``Retry-After`` on a 503 that sets none."""
    headers = {**(getattr(error, "headers", None) or {}), **(extra or {})}
    if error.status == 503:
        headers.setdefault("Retry-After", str(UNAVAILABLE_RETRY_AFTER))
    return headers


def problem_response(error: CutoutError, headers: Mapping[str, str] | None = None) -> Response:
    """The problem+json response for ``error`` (with :func:`error_headers`)."""
    body = error.to_problem(instance=_instance())
    response = Response(json.dumps(body), status=error.status, mimetype=PROBLEM_MIMETYPE)
    for name, value in error_headers(error, headers).items():
        response.headers[name] = value
    return response


def _instance() -> str | None:
    try:
        return request.path
    except RuntimeError:  # outside a request (unit tests rendering a problem)
        return None


# werkzeug status → our error class; anything else gets a code from werkzeug's name
_HTTP_ERRORS: dict[int, type[CutoutError]] = {
    400: InvalidRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedFormat,
}


def from_http_exception(exc: HTTPException) -> CutoutError:
    """Translate a werkzeug HTTPException into our error family (same status)."""
    status = exc.code or 500
    cls = _HTTP_ERRORS.get(status)
    if status == 404:
        error: CutoutError = NotFound("no such resource")
    elif status == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
    elif status == 413:
        error = PayloadTooLarge("the request body is larger than this server accepts")
    elif cls is not None:
        # werkzeug's descriptions are generic and safe ("The browser sent a request...")
        error = cls(exc.description or cls.title)
    else:
        error = CutoutError(exc.description or exc.name)
        error.code = _snake(exc.name)
        error.status = status
        error.title = exc.name
    headers = {}
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="cutout"'
    if headers:
        error.headers = headers  # type: ignore[attr-defined]
    return error


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"


def register_error_handlers(app: Flask) -> None:
    """Install the single rendering path for every error."""

    @app.errorhandler(CutoutError)
    def handle_cutout_error(error: CutoutError) -> Response:
        if error.status >= 500:
            # ours and expected (storage down, timeout): no traceback, but visible
            log.warning(
                "request failed: %s",
                error.code,
                extra={"code": error.code, "detail": error.message},
            )
        return problem_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException) -> Response | HTTPException:
        if exc.code is None or 300 <= exc.code < 400:
            return exc  # routing redirects (trailing slash) pass through
        return problem_response(from_http_exception(exc))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        # the traceback goes to the log only; the client learns nothing about internals
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(CutoutError("an unexpected error occurred"))


def problem_schema() -> dict[str, Any]:
    """JSON Schema of the problem document (used by the OpenAPI document)."""
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "examples": ["invalid_image", "not_found"]},
            "instance": {"type": "string"},
        },
        "additionalProperties": True,
    }
