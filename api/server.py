"""The gunicorn worker class of ``cutout api``: gunicorn's own errors as problem+json.

gunicorn answers some requests before Flask sees them: a request line over
``limit_request_line`` (414), a header over ``limit_request_field_size`` or more than
``limit_request_fields`` headers (431), a request it cannot parse (400). It writes those
answers with ``gunicorn.util.write_error``, a hard-coded HTML page with no setting to
change it (benoitc/gunicorn#993). Our API promises ``application/problem+json`` for every
error, so this worker replaces that one function in its own process with
:func:`write_problem`. gunicorn's limits themselves stay as they are: they bound what
one request may make a process read before our code runs.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from shared.errors import PROBLEM_BASE

# gunicorn's statuses → our stable codes (a status not listed gets a code from its reason)
CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "header_too_large",
    500: "internal_error",
    501: "not_implemented",
}
DETAILS = {
    400: "the server could not parse the request",
    414: "the request line (method, path and query) is longer than this server accepts",
    431: "the request's headers are larger, or more, than this server accepts",
}
MAX_DETAIL = 200


def problem_bytes(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP/1.1 answer gunicorn writes, as problem+json (connection closed)."""
    code = CODES.get(status) or "_".join(reason.lower().split()) or "error"
    detail = DETAILS.get(status, reason)
    if message:
        # gunicorn's message says which limit ("Request Line is too large (20020 > 4094)");
        # cut, so that the answer never grows with what the client sent
        detail = f"{detail}: {message[:MAX_DETAIL]}"
    body = json.dumps(
        {
            "type": PROBLEM_BASE + code,
            "title": reason,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for ``gunicorn.util.write_error``."""
    util.write_nonblock(sock, problem_bytes(status_int, reason, mesg))


class ProblemThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker whose pre-Flask errors are problem+json."""

    def init_process(self) -> None:
        # in this worker process only (after fork), before it serves a request
        util.write_error = write_problem
        super().init_process()
