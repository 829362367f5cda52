"""``GET /v1/corrections``: the caller's corrected jobs as training data, a page at a
time (docs/api.md, "Corrections as training data"; ``cutout corrections export`` reads
it).

Each item is a job whose mask a client corrected (PUT /v1/jobs/{id}/mask) with the
correction's time and version, the job's batch, metadata and options, and where to get
the input and the corrected mask: the API's own URLs (the caller's API key) and signed
storage URLs (no key, valid ``SIGNED_URL_EXPIRY`` seconds). Oldest correction first;
the paging rules are api/correctionpages.py's.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, g, request

from api.correctionpages import SCAN_MAX, STEP, Cursor, Query, entries, iso, prune
from api.job_input import stored_input
from api.openapi import doc
from api.services import Services, current
from shared.contract.shapes.records import JobRecord

bp = Blueprint("correction_list", __name__, url_prefix="/v1/corrections")

SIGNED_URL_EXPIRY = 3600  # seconds the items' signed storage URLs stay valid

_URL = {"type": "string"}
_STAMP = {"type": "string", "format": "date-time"}
ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "job_id",
        "batch_id",
        "metadata",
        "options",
        "corrected_at",
        "version",
        "input_url",
        "mask_url",
        "input_signed_url",
        "mask_signed_url",
        "signed_urls_expire_at",
    ],
    "properties": {
        "job_id": {"type": "string", "description": "the corrected job"},
        "batch_id": {"type": ["string", "null"], "description": "its batch, if any"},
        "metadata": {"type": "object", "description": "the job's metadata (a SKU, say)"},
        "options": {"$ref": "#/components/schemas/Options"},
        "corrected_at": {
            **_STAMP,
            "description": "when the job's newest correction was rendered (what `since` compares)",
        },
        "version": {"type": "integer", "description": "the result version it made"},
        "input_url": {**_URL, "description": "GET with your API key: the input as stored"},
        "mask_url": {
            **_URL,
            "description": "GET with your API key: the corrected mask, a grey PNG of the "
            "input's size",
        },
        "input_signed_url": {**_URL, "description": "the input, from storage, no key"},
        "mask_signed_url": {**_URL, "description": "the mask, from storage, no key"},
        "signed_urls_expire_at": {**_STAMP, "description": "when the signed URLs stop working"},
    },
}
PAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["items", "next_cursor"],
    "properties": {
        "items": {"type": "array", "items": ITEM_SCHEMA},
        "next_cursor": {"type": ["string", "null"]},
    },
}


def _parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


@bp.get("")
@doc(
    summary="Your corrected jobs: inputs and corrected masks, as training data",
    description="The jobs of your tenant whose mask was corrected (PUT "
    "/v1/jobs/{id}/mask), oldest correction first, each once with its newest correction. "
    "Go on with `?cursor=` (the previous page's `next_cursor`, with the same filters) "
    "while `next_cursor` is not null; a correction rendered while you page comes after "
    "the pages you have read (a job corrected again comes again, with its new version). "
    "Jobs past the retention are left out. `cutout corrections export` downloads them.",
    tags=["jobs"],
    parameters=[
        _parameter("limit", {"type": "integer"}, "items per page, 1-1000 (default 100)"),
        _parameter(
            "since",
            {"type": "string", "format": "date-time"},
            "only corrections rendered at or after this RFC 3339 time",
        ),
        _parameter("batch_id", {"type": "string"}, "only the jobs of this batch"),
        _parameter("cursor", {"type": "string"}, "the previous page's `next_cursor`"),
    ],
    responses={
        200: {"description": "a page of corrected jobs", "schema": PAGE_SCHEMA},
        400: {
            "description": "invalid_request (limit, since, batch_id or cursor)",
            "problem": True,
        },
        503: {"description": "unavailable (Redis)", "problem": True},
    },
)
def list_corrections() -> Response:
    svc = current()
    body = page(svc, g.tenant, Query.from_args(request.args))
    return Response(json.dumps(body), mimetype="application/json")


def page(svc: Services, tenant: str, query: Query) -> dict[str, Any]:
    """One page of the tenant's corrected jobs for ``query`` (see the module doc)."""
    step = STEP if query.batch_id else min(STEP, query.limit + 1)
    found = entries(svc.corrections, svc.store, tenant, query, step)
    items: list[dict[str, Any]] = []
    gone: list[str] = []
    last: Cursor | None = None
    scanned = 0
    more = False
    for job_id, at, job in found:
        if len(items) == query.limit or scanned == SCAN_MAX:
            more = True  # an entry beyond this page
            break
        scanned += 1
        last = Cursor(at, job_id)
        if job is None or job.tenant != tenant:
            gone.append(job_id)
            continue
        if query.batch_id and job.batch_id != query.batch_id:
            continue
        item = _item(svc, job, at)
        if item is not None:
            items.append(item)
    prune(svc.corrections, tenant, gone)
    return {"items": items, "next_cursor": last.encode() if more and last else None}


def _item(svc: Services, job: JobRecord, at: float) -> dict[str, Any] | None:
    """The listing's item for a corrected job (None for one with no corrected mask)."""
    result = job.result or {}
    mask_key, input_key = result.get("mask_key"), stored_input(job)
    if job.status != "succeeded" or not mask_key or not input_key:
        return None
    job_id, version = job.id, int(result.get("version") or 1)
    storage = svc.storage
    return {
        "job_id": job_id,
        "batch_id": job.batch_id,
        "metadata": job.metadata or {},
        "options": job.options or {},
        "corrected_at": iso(at),
        "version": version,
        "input_url": f"/v1/jobs/{job_id}/input",
        "mask_url": f"/v1/jobs/{job_id}/mask?version={version}",
        "input_signed_url": storage.presign_get(input_key, SIGNED_URL_EXPIRY),
        "mask_signed_url": storage.presign_get(
            str(mask_key), SIGNED_URL_EXPIRY, f"{job_id}.mask.v{version}.png"
        ),
        "signed_urls_expire_at": iso(time.time() + SIGNED_URL_EXPIRY),
    }
