"""``POST /v1/uploads``: signed S3 PUT URLs so bulk clients send bytes straight to storage.

The key carries the tenant (``uploads/<tenant>/<upl_id>``) and jobs accept only their
own tenant's keys. The signature binds the content type (and the length, when the
client declares ``bytes``), and expires after 15 minutes; the size is checked again
when a job uses the key, and the worker sniffs the bytes like any other input.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from api.jobs import json_body
from api.openapi import doc
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.ids import new_id
from shared.storage import upload_key

bp = Blueprint("uploads", __name__, url_prefix="/v1/uploads")

MAX_COUNT = 100
EXPIRES = 900  # seconds
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CONTENT_TYPES = {
    DEFAULT_CONTENT_TYPE,
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/tiff",
}
FIELDS = {"count", "content_type", "bytes"}


def presign_put(storage: Any, key: str, content_type: str, length: int | None) -> str:
    """A signed PUT URL; with ``length`` the Content-Length header is signed too."""
    if length is None:
        return str(storage.presign_put(key, content_type, EXPIRES))
    return str(
        storage.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": storage.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": length,
            },
            ExpiresIn=EXPIRES,
        )
    )


def _int_field(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"`{name}` must be an integer", field=name)
    return value


@bp.post("")
@doc(
    summary="Signed URLs for direct upload to storage",
    description="Body (optional): `count` (1-100), `content_type` (the Content-Type the "
    "PUT must send), `bytes` (the exact size; signed when given). Each URL expires after "
    "15 minutes. Use the `upload_key` in POST /v1/jobs or /v1/batches.",
    tags=["uploads"],
    request={"application/json": "UploadRequest"},
    responses={
        201: {
            "description": "the upload slots",
            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Upload"}},
        },
        400: {"description": "invalid_request", "problem": True},
        413: {"description": "payload_too_large (declared bytes)", "problem": True},
    },
)
def create_uploads() -> Response:
    svc = current_app.extensions["cutout"]
    body = json_body() if request.content_length or request.is_json else {}
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(FIELDS))}"
        )
    count = _int_field(body, "count", 1) or 0
    if not 1 <= count <= MAX_COUNT:
        raise InvalidRequest(f"`count` must be between 1 and {MAX_COUNT}", field="count")
    content_type = body.get("content_type") or DEFAULT_CONTENT_TYPE
    if not isinstance(content_type, str) or content_type.lower() not in CONTENT_TYPES:
        raise InvalidRequest(
            f"`content_type` must be one of {', '.join(sorted(CONTENT_TYPES))}",
            field="content_type",
        )
    content_type = content_type.lower()
    length = _int_field(body, "bytes", None)
    if length is not None:
        if length < 1:
            raise InvalidRequest("`bytes` must be positive", field="bytes")
        if length > svc.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"`bytes` is over the upload limit of {svc.settings.max_upload_bytes}"
            )
    expires_at = (
        (datetime.now(UTC) + timedelta(seconds=EXPIRES))
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )
    headers = {"Content-Type": content_type}
    if length is not None:
        headers["Content-Length"] = str(length)
    slots = []
    for _ in range(count):
        key = upload_key(g.tenant, new_id("upl"))
        slots.append(
            {
                "upload_key": key,
                "url": presign_put(svc.storage, key, content_type, length),
                "method": "PUT",
                "headers": headers,
                "expires_at": expires_at,
            }
        )
    return Response(json.dumps(slots), status=201, mimetype="application/json")
