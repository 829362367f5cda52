"""Client JSON with bounds, and the `metadata` member's rule: pure, shared by the request
models (`shared.contract.shapes.requests`) and the API's readers (`api.jsonbody`, `api.fields`).

Python's ``json`` parser recurses once per ``[`` or ``{``: 100,000 of them raise
``RecursionError``, which is not a ``ValueError`` and would leave as a 500. Every JSON
text a client sends goes through :func:`loads`, which answers ``400 invalid_request`` for
such a text and for anything nested deeper than :data:`MAX_DEPTH` levels (our documents
need 4).
"""

from __future__ import annotations

import json
from typing import Any

from shared.errors import InvalidRequest

MAX_DEPTH = 32  # levels of arrays and objects in any JSON a client sends
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8  # levels of objects and arrays, the top object included


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


def parse_metadata(value: Any) -> dict[str, Any]:
    """``metadata``: a JSON object (or its text, as a form sends it) of at most 16 KiB."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        if len(value.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES * 6:
            # the text is read before its size is judged; refuse the absurd first
            raise InvalidRequest(
                f"metadata is over the limit of {MAX_METADATA_BYTES} bytes", field="metadata"
            )
        value = loads(value, "metadata", field="metadata")
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object", field="metadata")
    if depth(value) > MAX_METADATA_DEPTH:
        raise InvalidRequest(
            f"metadata nests deeper than {MAX_METADATA_DEPTH} levels", field="metadata"
        )
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except UnicodeEncodeError:
        # a lone surrogate ("\ud800") is valid JSON but no text: it would break every
        # place that writes the metadata out as UTF-8 (results.zip's manifest, file names)
        raise InvalidRequest(
            "metadata holds a lone UTF-16 surrogate, which is not text", field="metadata"
        ) from None
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest(
            f"metadata is {size} bytes of JSON, over the limit of {MAX_METADATA_BYTES}",
            field="metadata",
        )
    return value
