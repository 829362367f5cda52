"""The sandbox's messages (worker/engine/sandbox.py ⇄ worker/engine/sandbox_runner.py).

One message is a frame: 8 bytes (the JSON header's length and the payload's, big-endian
unsigned 32-bit), the header (a JSON object) and the payload (an array's raw bytes, or
nothing). JSON and raw bytes only: the pool child never unpickles what the runner, which
runs a tenant's graph, sends it, and it refuses a header or payload over the sizes it
expects before reading them.
"""

from __future__ import annotations

import json
import struct
from typing import Any

HEAD = struct.Struct(">II")
#: the largest header either side accepts (ONNX Runtime's messages are cut well below)
MAX_HEADER = 1 << 16


class WireError(Exception):
    """A frame that breaks the protocol (too large, not JSON)."""


def frame(header: dict[str, Any], payload: bytes | memoryview = b"") -> list[bytes | memoryview]:
    """The parts of one frame, to be written in order."""
    meta = json.dumps(header, separators=(",", ":")).encode()
    if len(meta) > MAX_HEADER:
        raise WireError(f"header of {len(meta)} bytes")
    return [HEAD.pack(len(meta), len(payload)), meta, payload]


def sizes(head: bytes, max_payload: int) -> tuple[int, int]:
    """The header's and payload's lengths from a frame's first 8 bytes, checked."""
    meta, payload = HEAD.unpack(head)
    if meta > MAX_HEADER or payload > max_payload:
        raise WireError(f"frame of {meta} + {payload} bytes (at most {MAX_HEADER} + {max_payload})")
    return meta, payload


def header(meta: bytes) -> dict[str, Any]:
    try:
        value = json.loads(meta)
    except ValueError:
        raise WireError("header is not JSON") from None
    if not isinstance(value, dict):
        raise WireError("header is not a JSON object")
    return value
