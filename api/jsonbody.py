"""Reading JSON from clients with bounds: body size (also for chunked bodies), nesting depth.

Python's ``json`` parser recurses once per ``[`` or ``{``: 100,000 of them raise
``RecursionError``, which is not a ``ValueError`` and would leave as a 500. Every JSON
text a client sends (a request body, the multipart ``options`` and ``metadata`` fields)
goes through :func:`loads`, which answers ``400 invalid_request`` for such a text and for
anything nested deeper than :data:`MAX_DEPTH` levels (our documents need 4).

A chunked body has no ``Content-Length`` to refuse up front; werkzeug stops reading it at
``MAX_CONTENT_LENGTH`` and hands over the cut-off part without saying so, which used to
read as "not valid JSON". :func:`request_json` looks one byte past the limit and answers
``413 payload_too_large`` when the body goes on.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request, request

from shared.errors import InvalidRequest, PayloadTooLarge

MAX_DEPTH = 32  # levels of arrays and objects in any JSON a client sends


def depth(value: Any) -> int:
    """How many levels of arrays and objects ``value`` nests (iterative: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def loads(text: str | bytes, what: str = "the body", field: str | None = None) -> Any:
    """Parse client JSON; InvalidRequest (400) when it is not JSON or nests too deep."""
    extra = {"field": field} if field else {}
    try:
        # NaN and Infinity are Python's extensions, not JSON: strict clients cannot read
        # them back when a stored record repeats them (GET /v1/models)
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise InvalidRequest(
            f"{what} nests deeper than {MAX_DEPTH} levels of arrays and objects", **extra
        ) from None
    except (ValueError, TypeError):
        raise InvalidRequest(f"{what} is not valid JSON", **extra) from None
    if depth(value) > MAX_DEPTH:
        raise InvalidRequest(
            f"{what} nests deeper than {MAX_DEPTH} levels of arrays and objects", **extra
        )
    return value


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
