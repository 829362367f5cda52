"""`/v1/batches`: many images in one request, their progress, their jobs, one zip.

Accepting a batch is quick whatever its size: every item is validated up front
(`api.batches.parsing`, pure), the tenant's queue cap is reserved for all items at once,
multipart inputs are stored, then the batch and its job records go to Redis in pipelined
chunks and one task sends the items' messages (`api.batches.writes`). Listings page by
cursor (`api.batches.pages`); `results.zip` is streamed (`api.batches.zipstream`).
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, g, request

from api.batches import pages, writes
from api.batches.parsing import BatchRequest, parse_json, parse_multipart
from api.batches.zipstream import stream_zip
from api.capabilities import check_fast
from api.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_PARAMETER
from api.idempotency import idempotent
from api.intake import check_background
from api.jsonbody import request_json
from api.openapi import doc
from api.ratelimit import queue_slots
from api.services import Services, current
from shared.contract.shapes import public_batch
from shared.contract.shapes.records import BatchRecord
from shared.contract.tasks import BULK
from shared.errors import InvalidRequest, NotFound
from shared.ids import new_id, valid_id

log = logging.getLogger("cutout.api")

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")


# -- POST /v1/batches -----------------------------------------------------------------


@bp.post("")
@doc(
    summary="Submit many images as one batch",
    parameters=[IDEMPOTENCY_PARAMETER],
    description='JSON `{"items": [{"image_url" | "upload_key", "options"?, '
    '"metadata"?}], "options"?, "webhook_url"?, "metadata"?}` (item options override the '
    "batch's), or multipart with repeated `images` files plus batch-level option fields, "
    "`webhook_url` and `metadata`. Every item is checked before anything is stored; a bad "
    "item refuses the whole batch and the problem's `item` names its index. Items run on "
    "the `bulk` queue, after single jobs. `webhook_url` receives one `batch.completed`. "
    "Limits: `CUTOUT_MAX_BATCH_ITEMS` items, `CUTOUT_MAX_BATCH_BYTES` of body.",
    tags=["batches"],
    request={"application/json": "BatchJson", "multipart/form-data": "BatchMultipart"},
    responses={
        202: {
            "description": "accepted; items are queued",
            "schema": "Batch",
            "headers": {"Location": "/v1/batches/{id}"},
        },
        400: {"description": "malformed request (invalid_request)", "problem": True},
        413: {"description": "payload_too_large", "problem": True},
        415: {"description": "unsupported_format (multipart image)", "problem": True},
        422: {
            "description": "invalid_option, invalid_image, image_too_large, "
            "upload_not_found, url_not_allowed; `item` is the item's index",
            "problem": True,
        },
        409: {"description": "idempotency_in_progress (retry shortly)", "problem": True},
        429: {"description": "queue_full, rate_limited", "problem": True},
        503: {"description": "unavailable", "problem": True},
    },
)
def create_batch() -> Response:
    # werkzeug counts every file as a form part (default cap 1000); raised before anything
    # (the Idempotency-Key fingerprint first) parses the form
    request.max_form_parts = current().settings.max_batch_items + 100
    # Idempotency-Key (api/idempotency.py): a repeat answers the batch the key created
    with idempotent(current(), g.tenant) as slot:
        if slot.replay is not None:
            return _accepted(load_batch(slot.replay.id))
        batch = _create_batch()
        slot.save(batch.id, f"/v1/batches/{batch.id}")
    return _accepted(batch)


def _accepted(batch: BatchRecord) -> Response:
    response = Response(json.dumps(public_batch(batch)), status=202, mimetype="application/json")
    response.headers["Location"] = f"/v1/batches/{batch.id}"
    return response


def _parse(svc: Services, tenant: str) -> BatchRequest:
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        return parse_multipart(
            request.form,
            request.files.getlist("images"),
            list(request.files),
            svc.settings,
            tenant,
        )
    if mimetype == "application/json" or mimetype.endswith("+json"):
        parsed = parse_json(request_json(), svc.settings, tenant)
        writes.check_upload_keys(
            svc, tenant, [item for item in parsed.items if item.input_key is not None]
        )
        return parsed
    raise InvalidRequest(
        "send application/json with `items`, or multipart/form-data with `images` "
        f"files (got Content-Type {mimetype or 'none'!r})"
    )


def _create_batch() -> BatchRecord:
    svc = current()
    tenant = g.tenant
    parsed = _parse(svc, tenant)
    check_fast(svc, (item.options for item in parsed.items))
    for item in parsed.items:
        check_background(tenant, item.options)
    batch_id = new_id("bat")
    job_ids = [item.job_id for item in parsed.items]
    with queue_slots(svc, tenant, job_ids):
        writes.store_uploads(svc, parsed.items)
        writes.store_batch(svc, tenant, batch_id, parsed)
    writes.enqueue(svc, batch_id, job_ids)
    batch = svc.store.get_batch(batch_id)
    if batch is None:  # stored a moment ago; gone only if someone deleted it meanwhile
        raise NotFound("no such batch")
    for item in parsed.items:
        svc.metrics.job_created({"options": {"model": item.options.model}, "queue": BULK})
    log.info(
        "batch accepted",
        extra={"batch_id": batch_id, "tenant": tenant, "items": len(parsed.items)},
    )
    return batch


# -- reading ----------------------------------------------------------------------------


def load_batch(batch_id: str) -> BatchRecord:
    """The caller's batch, or NotFound (unknown, malformed and other tenants' ids alike)."""
    if not valid_id(batch_id, "bat"):
        raise NotFound("no such batch")
    batch = current().store.get_batch(batch_id, g.tenant)
    if batch is None:
        raise NotFound("no such batch")
    return batch


@bp.get("/<batch_id>")
@doc(
    summary="Batch progress",
    description="`counts` are read in one atomic step, so they always add up to `total`.",
    tags=["batches"],
    responses={
        200: {"description": "the batch", "schema": "Batch"},
        404: {"description": "not_found", "problem": True},
    },
)
def get_batch(batch_id: str) -> Response:
    return Response(json.dumps(public_batch(load_batch(batch_id))), mimetype="application/json")


@bp.get("/<batch_id>/jobs")
@doc(
    summary="The batch's jobs, in item order or worst score first, paginated",
    description="`?limit=` (1-1000, default 100), `?status=` (one status, or several "
    "separated by commas), `?review=true|false` (the jobs whose `result.quality.review` is "
    "true, or false; jobs without a score match neither), `?order=item|score` (`score`: "
    "only the succeeded jobs that have a quality score, worst first, ties by job id), "
    "`?cursor=` (the `next_cursor` of the previous page, sent with the same `order`; "
    "another order refuses it). With a filter a page may hold fewer than `limit` jobs; go "
    "on while `next_cursor` is not null.",
    tags=["batches"],
    parameters=[
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
        {"name": "status", "in": "query", "required": False, "schema": {"type": "string"}},
        {
            "name": "review",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean"},
            "description": "true: the jobs to look at (score below CUTOUT_REVIEW_BELOW)",
        },
        {
            "name": "order",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": list(pages.ORDERS), "default": "item"},
            "description": "`score`: the scored succeeded jobs, worst first",
        },
        {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
    ],
    responses={
        200: {
            "description": "a page of jobs",
            "schema": "JobPage",
        },
        400: {
            "description": "invalid_request (limit, status, review, order, cursor)",
            "problem": True,
        },
        404: {"description": "not_found", "problem": True},
    },
)
def list_jobs(batch_id: str) -> Response:
    batch = load_batch(batch_id)
    body = pages.page(current().store, batch, request.args)
    return Response(json.dumps(body), mimetype="application/json")


@bp.get("/<batch_id>/results.zip")
@doc(
    summary="Every finished result of the batch, and manifest.csv, as one zip",
    description="Streamed as it is written. Results are named after the item's metadata "
    "`name` or `filename` (or the multipart file's name) with the result's extension, "
    "else `<item index:05d>_<job id>.<ext>`; names are unique. `manifest.csv` lists every "
    "item: `item_index, job_id, status, error_code, error_message, file, metadata, score, "
    "review, flags, version` (metadata as JSON; `score`, `review` (`true`/`false`) and "
    "`flags` (codes separated by spaces) from `result.quality`, empty for a job without "
    "one; `version`: the result's, the newest after corrected masks). A running batch "
    "gives the results so far (`X-Batch-Status`).",
    tags=["batches"],
    responses={
        200: {"description": "the zip", "content_type": "application/zip"},
        404: {"description": "not_found", "problem": True},
    },
)
def results_zip(batch_id: str) -> Response:
    batch = load_batch(batch_id)
    svc = current()
    response = Response(stream_zip(svc.store, svc.storage, batch), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{batch_id}.zip"'
    response.headers["X-Batch-Status"] = batch.status or "running"
    return response
