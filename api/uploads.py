"""``POST /v1/uploads``: signed S3 PUT URLs so bulk clients send bytes straight to storage.

The key carries the tenant (``uploads/<tenant>/<upl_id>``) and jobs accept only their
own tenant's keys. The signature binds the content type and the exact length (the
client declares ``bytes`` for every slot, or ``sizes`` for each one): storage refuses a
PUT of any other length (SeaweedFS answers 403 SignatureDoesNotMatch, tested), so a slot
can never store more than the upload limit. URLs expire after 15 minutes; the size is
checked again when a job uses the key, and the worker sniffs the bytes like any other
input. Every slot is listed for deletion after ``CUTOUT_RETENTION`` (the worker's
retention sweep), so uploads that no job uses do not stay forever; a job that uses one
pushes that back to the job's own retention (shared/store.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, g, request

from api.jobs import json_body
from api.openapi import doc
from api.services import current
from shared import imagecheck
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.ids import new_id
from shared.keys import upload_key
from shared.shapes.requests import UploadRequest
from shared.storage import Storage

bp = Blueprint("uploads", __name__, url_prefix="/v1/uploads")

MAX_COUNT = 100
EXPIRES = 900  # seconds
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# what a slot may declare: the types of the formats we read (shared/imagecheck.py)
CONTENT_TYPES = {DEFAULT_CONTENT_TYPE, *imagecheck.CONTENT_TYPES.values()}
FIELDS = UploadRequest.members()  # the body's members, as OpenAPI's UploadRequest


def presign_put(storage: Storage, key: str, content_type: str, length: int) -> str:
    """A signed PUT URL whose signature covers the Content-Length header."""
    return storage.presign_put(key, content_type, EXPIRES, content_length=length)


def _int_field(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"`{name}` must be an integer", field=name)
    return value


def _sizes(body: dict[str, Any], limit: int) -> list[int]:
    """One declared length per slot, from ``sizes``, or ``bytes`` × ``count``."""
    if "sizes" in body:
        raw = body["sizes"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_COUNT:
            raise InvalidRequest(
                f"`sizes` must be a list of 1 to {MAX_COUNT} byte counts", field="sizes"
            )
        if "bytes" in body:
            raise InvalidRequest("send `bytes` or `sizes`, not both", field="sizes")
        if "count" in body and body["count"] != len(raw):
            raise InvalidRequest("`count` must equal the length of `sizes`", field="count")
        sizes = [_size(value, "sizes", limit) for value in raw]
    else:
        count = _int_field(body, "count", 1) or 0
        if not 1 <= count <= MAX_COUNT:
            raise InvalidRequest(f"`count` must be between 1 and {MAX_COUNT}", field="count")
        if body.get("bytes") is None:
            raise InvalidRequest(
                "`bytes` (the exact size of each file) or `sizes` (one per file) is "
                "required: the size is signed into the upload URL",
                field="bytes",
            )
        sizes = [_size(body["bytes"], "bytes", limit)] * count
    return sizes


def _size(value: Any, name: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"`{name}` must hold integers", field=name)
    if value < 1:
        raise InvalidRequest(f"`{name}` must be positive", field=name)
    if value > limit:
        raise PayloadTooLarge(f"`{name}`: {value} bytes is over the upload limit of {limit}")
    return value


@bp.post("")
@doc(
    summary="Signed URLs for direct upload to storage",
    description="Body: `bytes` (the exact size of each file) with `count` (1-100, default "
    "1), or `sizes` (one exact size per slot, 1-100 of them); `content_type` (the "
    "Content-Type the PUT must send). The size is signed into the URL: storage refuses a "
    "PUT of any other length. Each URL expires after 15 minutes; an upload no job uses is "
    "deleted after CUTOUT_RETENTION. Use the `upload_key` in POST /v1/jobs or /v1/batches.",
    tags=["uploads"],
    request={"application/json": "UploadRequest"},
    responses={
        201: {
            "description": "the upload slots",
            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Upload"}},
        },
        400: {"description": "invalid_request", "problem": True},
        413: {"description": "payload_too_large (a declared size)", "problem": True},
    },
)
def create_uploads() -> Response:
    svc = current()
    body = json_body() if request.content_length or request.is_json else {}
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(FIELDS))}"
        )
    sizes = _sizes(body, svc.settings.max_upload_bytes)
    content_type = body.get("content_type") or DEFAULT_CONTENT_TYPE
    if not isinstance(content_type, str) or content_type.lower() not in CONTENT_TYPES:
        raise InvalidRequest(
            f"`content_type` must be one of {', '.join(sorted(CONTENT_TYPES))}",
            field="content_type",
        )
    content_type = content_type.lower()
    expires_at = (
        (datetime.now(UTC) + timedelta(seconds=EXPIRES))
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )
    slots: list[dict[str, Any]] = []
    for length in sizes:
        key = upload_key(g.tenant, new_id("upl"))
        slots.append(
            {
                "upload_key": key,
                "url": presign_put(svc.storage, key, content_type, length),
                "method": "PUT",
                "headers": {"Content-Type": content_type, "Content-Length": str(length)},
                "expires_at": expires_at,
            }
        )
    # deleted after the retention unless a job takes them up (then with the job)
    svc.store.expire_uploads(g.tenant, [slot["upload_key"] for slot in slots])
    return Response(json.dumps(slots), status=201, mimetype="application/json")
