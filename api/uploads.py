"""``POST /v1/uploads``: signed S3 PUT URLs so bulk clients send bytes straight to storage.

The key carries the tenant (``uploads/<tenant>/<upl_id>``) and jobs accept only their
own tenant's keys. The signature binds the content type and the exact length (the
client declares ``bytes`` for every slot, or ``sizes`` for each one): storage refuses a
PUT of any other length (SeaweedFS answers 403 SignatureDoesNotMatch, tested), so a slot
can never store more than the upload limit. URLs expire after 15 minutes; the size is
checked again when a job uses the key, and the worker sniffs the bytes like any other
input. Every slot is listed for deletion after ``CUTOUT_RETENTION`` (the worker's
retention sweep), so uploads that no job uses do not stay forever; a job that uses one
pushes that back to the job's own retention (shared/stores/jobs.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, g, request

from api.jsonbody import request_json
from api.openapi import doc
from api.services import current
from shared.contract.shapes.requests import UploadRequest, read_body
from shared.ids import new_id
from shared.s3.keys import upload_key
from shared.s3.storage import Storage

bp = Blueprint("uploads", __name__, url_prefix="/v1/uploads")

EXPIRES = 900  # seconds


def presign_put(storage: Storage, key: str, content_type: str, length: int) -> str:
    """A signed PUT URL whose signature covers the Content-Length header."""
    return storage.presign_put(key, content_type, EXPIRES, content_length=length)


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
    raw = request_json() if request.content_length or request.is_json else {}
    # the members, their kinds and each slot's size: the model (OpenAPI UploadRequest)
    body = read_body(UploadRequest, raw, max_bytes=svc.settings.max_upload_bytes)
    sizes, content_type = body.sizes or [], body.content_type
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
