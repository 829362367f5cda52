"""``Idempotency-Key`` for ``POST /v1/jobs`` and ``POST /v1/batches`` (docs/api.md).

The same key with the same request within 24 hours answers the object the first request
created (``202``, the same ``Location``, the object as it is now); the same key with
another request is ``422 idempotency_key_reused``. Keys are scoped to the tenant and
the path: the same key on another path is another key.

"The same request" is a SHA-256 over the method, the path, the tenant and the body:

- JSON: the parsed document re-serialised with sorted keys (whitespace and key order do
  not matter), or the raw bytes when it does not parse;
- multipart: the fields and files (name, file name, SHA-256 of the bytes) in a sorted
  order, not the raw body, because every client picks a fresh random boundary for each
  request and a retry would otherwise never match;
- anything else: the raw bytes.

Concurrent duplicates never create two objects: the first request claims the key with
``SET NX`` (a ``pending`` marker holding a random token), a duplicate that finds it
pending waits up to :data:`PENDING_WAIT` seconds for the outcome and then answers
``409 idempotency_in_progress`` with ``Retry-After``. A request that fails (any error)
gives the key back, so the client can correct it and retry with the same key; a pending
marker whose process died expires after :data:`PENDING_TTL`.

Both views use :func:`idempotent`::

    with idempotent(services, g.tenant) as slot:
        if slot.replay is not None:
            return respond(load_it(slot.replay.id))   # 202 and slot.replay.location
        obj = create_it()
        slot.save(obj["id"], f"/v1/things/{obj['id']}")
        return respond(obj)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Request, request

from api.jsonbody import body_bytes
from shared.contract.shapes.jsontext import loads
from shared.errors import CutoutError, IdempotencyMismatch, InvalidRequest
from shared.stores.idempotency import IdempotencyRecords
from shared.stores.idempotency import record_key as redis_key

if TYPE_CHECKING:
    from api.services import Services

HEADER = "Idempotency-Key"
TTL = 24 * 3600  # seconds a finished key answers with its object
PENDING_TTL = 300  # seconds a claim lives if its process dies (above gunicorn's timeout)
PENDING_WAIT = 10.0  # seconds a duplicate waits for the first request to finish
_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as in the IETF draft's examples

#: the OpenAPI description of the header, for the views that honour it
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "the same key and request within 24 h answer the same object (202, same "
    "Location); the same key with another request is 422 idempotency_key_reused; while the "
    "first request runs, a duplicate waits, then 409 idempotency_in_progress",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


class IdempotencyInProgress(CutoutError):
    code = "idempotency_in_progress"
    status = 409
    title = "A request with this Idempotency-Key is still being processed"


@dataclass(frozen=True)
class Replay:
    """What the first request with this key created."""

    id: str
    location: str
    status: int


class Slot:
    """The caller's handle on one key: ``replay`` is set when the work was done before."""

    def __init__(
        self,
        records: IdempotencyRecords | None = None,
        key: str = "",
        fingerprint: str = "",
        token: str = "",
    ) -> None:
        self.replay: Replay | None = None
        self.saved = False
        self._records = records
        self._key = key
        self._fingerprint = fingerprint
        self._token = token

    @property
    def claimed(self) -> bool:
        """True when this request holds the key and must do the work (and then save)."""
        return bool(self._token) and self.replay is None

    def save(self, resource_id: str, location: str, status: int = 202) -> None:
        """Record the created object for the key's 24 hours (no-op without a key)."""
        if not self.claimed or self._records is None:
            return
        self._records.finish(self._key, self._fingerprint, resource_id, location, status, TTL)
        self.saved = True


def request_fingerprint(req: Request, tenant: str) -> str:
    """SHA-256 (hex) of what makes two requests "the same" (see the module docstring)."""
    digest = hashlib.sha256()
    for part in (req.method, req.path, tenant):
        digest.update(part.encode() + b"\0")
    if req.mimetype == "multipart/form-data":
        digest.update(b"multipart\0")
        for name, value in sorted(req.form.items(multi=True)):
            digest.update(_framed("field", name, value.encode()))
        files = []
        for name, upload in req.files.items(multi=True):
            stream = upload.stream
            body = hashlib.sha256()
            for chunk in iter(lambda s=stream: s.read(1 << 16), b""):  # type: ignore[misc]
                body.update(chunk)
            stream.seek(0)  # the view reads it again
            files.append((name, upload.filename or "", body.hexdigest()))
        for name, filename, sha in sorted(files):
            digest.update(_framed("file", name, f"{filename}\0{sha}".encode()))
        return digest.hexdigest()
    data = body_bytes(req)  # 413 for a chunked body over the limit
    if req.mimetype == "application/json" or req.mimetype.endswith("+json"):
        try:
            canonical = json.dumps(
                loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        except InvalidRequest:
            pass  # not JSON, or too deep: hashed raw; the view refuses it
        else:
            # surrogatepass: a lone surrogate (\ud800) is hashed, not a 500; the view
            # refuses it where it matters
            digest.update(b"json\0" + canonical.encode("utf-8", "surrogatepass"))
            return digest.hexdigest()
    digest.update(b"raw\0" + data)
    return digest.hexdigest()


def _framed(kind: str, name: str, value: bytes) -> bytes:
    # length-prefixed, so that no two different part lists hash the same bytes
    head = f"{kind}\0{len(name)}\0{name}\0{len(value)}\0".encode()
    return head + value


@contextlib.contextmanager
def idempotent(services: Services, tenant: str, req: Request | None = None) -> Iterator[Slot]:
    """Guard one creating request by its ``Idempotency-Key`` (see the module docstring).

    Without the header it yields a slot that does nothing. Raises InvalidRequest (a
    malformed key), IdempotencyMismatch (422, the key was used with another request),
    IdempotencyInProgress (409, a duplicate still running after PENDING_WAIT).
    Exceptions of the body give the key back and propagate.
    """
    req = req if req is not None else request
    key = req.headers.get(HEADER)
    if key is None:
        yield Slot()
        return
    if not _KEY_RE.fullmatch(key):
        raise InvalidRequest(
            f"{HEADER} must be 1-255 visible ASCII characters", field=HEADER.lower()
        )
    records = services.idempotency
    fingerprint = request_fingerprint(req, tenant)
    name = redis_key(tenant, req.path, key)
    token = secrets.token_hex(16)
    slot = _claim_or_replay(records, name, fingerprint, token)
    try:
        yield slot
    except BaseException:
        if slot.claimed:
            records.release(name, token)
        raise
    if slot.claimed and not slot.saved:
        # the body answered without creating anything (it should have raised): give back
        records.release(name, token)


def _claim_or_replay(records: IdempotencyRecords, name: str, fingerprint: str, token: str) -> Slot:
    deadline = time.monotonic() + PENDING_WAIT
    while True:
        if records.claim(name, fingerprint, token, PENDING_TTL):
            return Slot(records, name, fingerprint, token)
        record = records.read(name)
        if record is None:
            continue  # the holder failed and gave it back: claim it ourselves
        if record.get("fingerprint") != fingerprint:
            raise IdempotencyMismatch(
                f"this {HEADER} was already used with a different request in the last 24 hours"
            )
        if record.get("state") == "done":
            slot = Slot()
            slot.replay = Replay(record["id"], record["location"], int(record["status"]))
            return slot
        if time.monotonic() >= deadline:
            error = IdempotencyInProgress(
                f"the first request with this {HEADER} has not finished; retry shortly"
            )
            error.headers = {"Retry-After": "1"}  # type: ignore[attr-defined]
            raise error
        time.sleep(0.05)
