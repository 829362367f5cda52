"""Reading JSON from clients with bounds: body size (also for chunked bodies), nesting depth.

Every JSON text a client sends (a request body, the multipart ``options`` and
``metadata`` fields) goes through :func:`loads` (``shared.contract.shapes.jsontext``), which
answers ``400 invalid_request`` for a text nested deeper than :data:`MAX_DEPTH` levels
instead of a ``RecursionError`` (a 500).

A chunked body has no ``Content-Length`` to refuse up front; werkzeug stops reading it at
``MAX_CONTENT_LENGTH`` and hands over the cut-off part without saying so, which used to
read as "not valid JSON". :func:`request_json` looks one byte past the limit and answers
``413 payload_too_large`` when the body goes on.
"""

from __future__ import annotations

from typing import Any

from flask import Request, request

from shared.contract.shapes.jsontext import loads
from shared.errors import PayloadTooLarge


def body_bytes(req: Request | None = None) -> bytes:
    """The whole body (cached); PayloadTooLarge when a chunked body runs past the limit."""
    req = req if req is not None else request
    data = req.get_data(cache=True)
    limit = req.max_content_length
    if limit is not None and req.content_length is None and len(data) >= limit:
        # werkzeug read up to the limit and stopped: one more byte means it was cut off
        raw = req.environ.get("wsgi.input")
        if raw is not None and raw.read(1):
            raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
    return data


def request_json(req: Request | None = None) -> Any:
    """The request body parsed as bounded JSON (see :func:`loads`)."""
    return loads(body_bytes(req))
