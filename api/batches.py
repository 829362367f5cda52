"""``/v1/batches``: many images in one request, their progress, their jobs, one zip.

Accepting a batch is quick whatever its size: every item is validated up front (a bad
one refuses the whole batch, naming its index), the tenant's queue cap is reserved for
all items at once, multipart inputs are stored, then the batch and its job records go to
Redis in pipelined chunks, and ONE task (``cutout.enqueue_batch``, on ``interactive`` so
that it runs at once) sends the items' ``process_job`` messages to ``bulk`` in chunks,
with a cursor on the batch so a redelivered enqueue continues where it stopped. Jobs
are durable before any message exists, so a worker never sees a half-made batch.

``results.zip`` is streamed: Python's zipfile writes into a sink that the response
generator drains after every chunk, each result streamed from storage, so neither the
zip nor any result is held whole in memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import io
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from werkzeug.datastructures import FileStorage

from api.capabilities import check_fast
from api.fields import check_url, parse_metadata, parse_webhook
from api.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_PARAMETER
from api.idempotency import idempotent
from api.intake import (
    CONTENT_TYPES,
    check_background,
    check_image,
    check_upload_key,
    new_job_record,
    own_upload_key,
    read_limited,
)
from api.jobs import json_body
from api.jsonbody import loads
from api.openapi import doc, ref
from api.ratelimit import queue_slots
from shared.errors import (
    CutoutError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    StorageError,
    Unavailable,
    UploadNotFound,
)
from shared.ids import new_id, now_iso, valid_id
from shared.limits import check_input, check_options
from shared.options import EXTENSIONS, Options, parse_options
from shared.storage import input_key
from shared.store import STATUSES, public_batch, public_job
from shared.tasks import BULK, ENQUEUE_BATCH, INTERACTIVE

log = logging.getLogger("cutout.api")

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")

BATCH_FIELDS = {"items", "options", "webhook_url", "metadata"}
ITEM_FIELDS = {"image_url", "upload_key", "options", "metadata"}
FORM_EXTRA_FIELDS = {"webhook_url", "metadata", "options"}
STORE_CHUNK = 500  # job records per pipelined write
IO_THREADS = 8  # concurrent storage calls (upload_key checks, multipart inputs)
LIST_ABOVE = 20  # more upload_keys than this are checked by listing, not one HEAD each
PAGE_DEFAULT = 100
PAGE_MAX = 1000
SCAN_MAX = 5000  # records one filtered page may look at before it answers
ZIP_CHUNK = 1 << 16
_UNSAFE_NAME = re.compile(r"[^\w.-]+")


def services() -> Any:
    return current_app.extensions["cutout"]


# -- POST /v1/batches -----------------------------------------------------------------


@dataclass
class Item:
    """One validated item: its future job's source, and for multipart its file."""

    index: int
    job_id: str
    options: Options
    metadata: dict[str, Any]
    source: dict[str, Any]
    input_key: str | None = None
    upload: FileStorage | None = field(default=None, repr=False)
    fmt: str | None = None


@dataclass
class Request:
    options: Options
    metadata: dict[str, Any]
    webhook: dict[str, Any] | None
    items: list[Item]


def for_item(error: CutoutError, index: int) -> CutoutError:
    """The same error (class, status, extras) naming the item it is about."""
    named = type(error)(f"items[{index}]: {error.message}", **{**error.extra, "item": index})
    named.code, named.status, named.title = error.code, error.status, error.title
    return named


@contextlib.contextmanager
def item_errors(index: int) -> Iterator[None]:
    try:
        yield
    except CutoutError as exc:
        raise for_item(exc, index) from None


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
    request={
        "application/json": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "image_url": {"type": "string", "format": "uri"},
                            "upload_key": {"type": "string"},
                            "options": ref("Options"),
                            "metadata": {"type": "object"},
                        },
                        "oneOf": [{"required": ["image_url"]}, {"required": ["upload_key"]}],
                        "additionalProperties": False,
                    },
                },
                "options": ref("Options"),
                "webhook_url": {"type": "string", "format": "uri"},
                "metadata": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "multipart/form-data": {
            "type": "object",
            "required": ["images"],
            "properties": {
                "images": {
                    "type": "array",
                    "items": {"type": "string", "contentEncoding": "binary"},
                },
                "webhook_url": {"type": "string"},
                "metadata": {"type": "string", "description": "a JSON object"},
                "options": {"type": "string", "description": "a JSON object of options"},
            },
        },
    },
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
    request.max_form_parts = services().settings.max_batch_items + 100
    # Idempotency-Key (api/idempotency.py): a repeat answers the batch the key created
    with idempotent(services(), g.tenant) as slot:
        if slot.replay is not None:
            return _accepted(load_batch(slot.replay.id))
        batch = _create_batch()
        slot.save(batch["id"], f"/v1/batches/{batch['id']}")
    return _accepted(batch)


def _accepted(batch: dict[str, Any]) -> Response:
    response = Response(json.dumps(public_batch(batch)), status=202, mimetype="application/json")
    response.headers["Location"] = f"/v1/batches/{batch['id']}"
    return response


def _create_batch() -> dict[str, Any]:
    svc = services()
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        parsed = _parse_multipart(svc)
    elif mimetype == "application/json" or mimetype.endswith("+json"):
        parsed = _parse_json(svc)
    else:
        raise InvalidRequest(
            "send application/json with `items`, or multipart/form-data with `images` "
            f"files (got Content-Type {mimetype or 'none'!r})"
        )
    check_fast(svc, (item.options for item in parsed.items))
    tenant = g.tenant
    for item in parsed.items:
        check_background(tenant, item.options)
    batch_id = new_id("bat")
    job_ids = [item.job_id for item in parsed.items]
    with queue_slots(svc, tenant, job_ids):
        _store_uploads(svc, tenant, parsed.items)
        _store_batch(svc, tenant, batch_id, parsed)
    _enqueue(svc, batch_id, job_ids)
    batch = svc.store.get_batch(batch_id)
    for item in parsed.items:
        svc.metrics.job_created({"options": {"model": item.options.model}, "queue": BULK})
    log.info(
        "batch accepted",
        extra={"batch_id": batch_id, "tenant": tenant, "items": len(parsed.items)},
    )
    return dict(batch)


def _batch_options(raw: Any) -> Options:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidRequest("`options` must be a JSON object", field="options")
    options = parse_options(raw)
    check_options(options, services().settings)
    return options


def _check_count(count: int, max_items: int) -> None:
    if count == 0:
        raise InvalidRequest("a batch needs at least one item", field="items")
    if count > max_items:
        raise PayloadTooLarge(
            f"the batch has {count} items, over the limit of {max_items}; split it",
            field="items",
        )


def _parse_json(svc: Any) -> Request:
    settings = svc.settings
    body = json_body()
    unknown = sorted(set(body) - BATCH_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(BATCH_FIELDS))}"
        )
    raw_items = body.get("items")
    if not isinstance(raw_items, list):
        raise InvalidRequest("`items` must be a list of objects", field="items")
    _check_count(len(raw_items), settings.max_batch_items)
    options = _batch_options(body.get("options"))
    metadata = parse_metadata(body.get("metadata"))
    webhook = parse_webhook(body.get("webhook_url"), settings)
    items = []
    uploads: list[Item] = []
    for index, raw in enumerate(raw_items):
        with item_errors(index):
            item = _json_item(settings, g.tenant, index, raw, options)
        items.append(item)
        if item.input_key is not None:
            uploads.append(item)
    _check_upload_keys(svc, uploads)
    return Request(options, metadata, webhook, items)


def _json_item(settings: Any, tenant: str, index: int, raw: Any, base: Options) -> Item:
    if not isinstance(raw, dict):
        raise InvalidRequest("an item must be a JSON object", field="items")
    unknown = sorted(set(raw) - ITEM_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(ITEM_FIELDS))}"
        )
    if ("upload_key" in raw) == ("image_url" in raw):
        raise InvalidRequest("send exactly one of `upload_key` and `image_url`")
    raw_options = raw.get("options")
    if raw_options is None:
        options = base
    elif isinstance(raw_options, dict):
        options = parse_options(raw_options, base=base) if raw_options else base
        check_options(options, settings)
    else:
        raise InvalidRequest("`options` must be a JSON object", field="options")
    metadata = parse_metadata(raw.get("metadata"))
    job_id = new_id("job")
    if "image_url" in raw:
        url = check_url(raw["image_url"], "image_url", settings)
        return Item(index, job_id, options, metadata, {"kind": "url", "url": url})
    key = raw["upload_key"]
    # another tenant's key reads exactly like a key that never held anything
    if not own_upload_key(tenant, key):
        raise UploadNotFound("no upload of yours under this upload_key", field="upload_key")
    return Item(index, job_id, options, metadata, {"kind": "upload"}, input_key=key)


def _check_upload_keys(svc: Any, items: list[Item]) -> None:
    """Every upload_key holds an object of at most CUTOUT_MAX_UPLOAD_BYTES.

    A few keys: one HEAD each (a few at a time). Many: one listing of the tenant's
    uploads between the smallest and the largest key asked for; upload ids are
    time-ordered, so that range holds the batch's uploads and little else, and 1,000
    keys come per request instead of one. The first failing item in item order is
    reported either way.
    """
    if not items:
        return
    if len(items) > LIST_ABOVE:
        _list_upload_keys(svc, g.tenant, items)
        return
    tenant = g.tenant  # flask's g does not reach the pool's threads

    def check(item: Item) -> CutoutError | None:
        try:
            check_upload_key(svc.storage, svc.settings, tenant, item.input_key)
        except NotFound:
            return for_item(
                UploadNotFound(
                    "nothing was uploaded under this upload_key (or it expired)",
                    field="upload_key",
                ),
                item.index,
            )
        except CutoutError as exc:
            return exc if exc.transient else for_item(exc, item.index)
        return None

    if len(items) == 1:
        errors = [check(items[0])]
    else:
        with ThreadPoolExecutor(min(IO_THREADS, len(items))) as pool:
            errors = list(pool.map(check, items))
    # the first failing item in item order, so the answer does not depend on timing
    for error in errors:
        if error is not None:
            raise error


def _list_upload_keys(svc: Any, tenant: str, items: list[Item]) -> None:
    import botocore.exceptions

    wanted = {item.input_key for item in items if item.input_key}
    first, last = min(wanted), max(wanted)
    sizes: dict[str, int] = {}
    # every key > first[:-1] in the tenant's prefix, so `first` itself is included
    try:
        pages = svc.storage.client.get_paginator("list_objects_v2").paginate(
            Bucket=svc.storage.bucket, Prefix=f"uploads/{tenant}/", StartAfter=first[:-1]
        )
        for page in pages:
            for entry in page.get("Contents", []):
                if entry["Key"] in wanted:
                    sizes[entry["Key"]] = int(entry["Size"])
            contents = page.get("Contents") or []
            if not contents or contents[-1]["Key"] >= last:
                break
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise StorageError("object storage could not list the uploads") from exc
    limit = svc.settings.max_upload_bytes
    for item in items:
        size = sizes.get(item.input_key or "")
        if size is None:
            raise for_item(
                UploadNotFound(
                    "nothing was uploaded under this upload_key (or it expired)",
                    field="upload_key",
                ),
                item.index,
            )
        if size > limit:
            raise for_item(
                PayloadTooLarge(f"the uploaded object is {size} bytes, over the limit of {limit}"),
                item.index,
            )


def _parse_multipart(svc: Any) -> Request:
    settings = svc.settings
    form = request.form
    uploads = request.files.getlist("images")
    if not uploads:
        others = ", ".join(sorted(request.files)) or "none"
        raise InvalidRequest(
            f"the multipart body has no `images` files (file fields: {others})", field="images"
        )
    _check_count(len(uploads), settings.max_batch_items)
    option_values: dict[str, Any] = {}
    if form.get("options"):
        options_field = loads(form["options"], "the `options` field", field="options")
        if not isinstance(options_field, dict):
            raise InvalidRequest("the `options` field must be a JSON object", field="options")
        option_values.update(options_field)
    option_values.update({k: v for k, v in form.items() if k not in FORM_EXTRA_FIELDS})
    options = parse_options(option_values)
    check_options(options, settings)
    metadata = parse_metadata(form.get("metadata"))
    webhook = parse_webhook(form.get("webhook_url"), settings)
    items = []
    for index, upload in enumerate(uploads):
        with item_errors(index):
            data = read_limited(upload.stream, settings.max_upload_bytes)
            fmt, size = check_image(data, settings)
            check_input(options, size, settings)
        source: dict[str, Any] = {"kind": "upload"}
        name = _client_filename(upload.filename)
        if name:
            source["filename"] = name
        job_id = new_id("job")
        items.append(
            Item(
                index,
                job_id,
                options,
                {},
                source,
                input_key=input_key(g.tenant, job_id),
                upload=upload,
                fmt=fmt,
            )
        )
    return Request(options, metadata, webhook, items)


def _client_filename(name: str | None) -> str | None:
    if not name:
        return None
    return name.replace("\\", "/").rsplit("/", 1)[-1][:255] or None


def _store_uploads(svc: Any, tenant: str, items: list[Item]) -> None:
    """Store multipart inputs (a few at a time), after every item passed its checks."""
    files = [
        (item.upload, item.fmt, item.input_key)
        for item in items
        if item.upload is not None and item.fmt and item.input_key
    ]
    if not files:
        return

    def put(file: tuple[FileStorage, str, str]) -> None:
        upload, fmt, key = file
        upload.stream.seek(0)
        data = read_limited(upload.stream, svc.settings.max_upload_bytes)
        svc.storage.put(key, data, CONTENT_TYPES[fmt])

    with ThreadPoolExecutor(min(IO_THREADS, len(files))) as pool:
        for _ in pool.map(put, files):
            pass


def _store_batch(svc: Any, tenant: str, batch_id: str, parsed: Request) -> None:
    """The batch record, then its job records in pipelined chunks (all ``queued``)."""
    batch = {
        "id": batch_id,
        "tenant": tenant,
        "status": "running",
        "created_at": now_iso(),
        # no finished_at member: the store sets it exactly once, when the batch completes
        "options": parsed.options.to_dict(),
        "metadata": parsed.metadata,
        "webhook": parsed.webhook,
        "enqueued": 0,
    }
    svc.store.create_batch(batch, total=len(parsed.items))
    for start in range(0, len(parsed.items), STORE_CHUNK):
        chunk = []
        for item in parsed.items[start : start + STORE_CHUNK]:
            record = new_job_record(
                job_id=item.job_id,
                tenant=tenant,
                options=item.options,
                source=item.source,
                input_key=item.input_key,
                metadata=item.metadata,
                queue=BULK,
                batch_id=batch_id,
            )
            record["item_index"] = item.index
            # members still empty are left out (readers treat a missing member as None):
            # a third fewer arguments to pack, which is most of the time a batch takes
            chunk.append({k: v for k, v in record.items() if v is not None})
        svc.store.add_batch_jobs(batch_id, chunk)


def _enqueue(svc: Any, batch_id: str, job_ids: list[str]) -> None:
    """One task sends the items' messages; if the broker refuses it, fail the items."""
    try:
        svc.celery.send_task(ENQUEUE_BATCH, args=[batch_id], queue=INTERACTIVE)
    except Exception as exc:  # noqa: BLE001 - kombu/redis raise many types; all mean "broker down"
        log.error("enqueue failed for batch %s: %s", batch_id, type(exc).__name__)
        error = Unavailable("the queue is unavailable; the batch was not started")
        # the items leave the queue cap and the batch completes (all failed); if the
        # store is down too, the records simply expire with their TTL
        with contextlib.suppress(CutoutError):
            for job_id in job_ids:
                svc.store.transition(
                    job_id,
                    "failed",
                    ["queued"],
                    error=error.to_job_error(),
                    finished_at=now_iso(),
                )
        raise error from None


# -- reading ----------------------------------------------------------------------------


def load_batch(batch_id: str) -> dict[str, Any]:
    """The caller's batch, or NotFound (unknown, malformed and other tenants' ids alike)."""
    if not valid_id(batch_id, "bat"):
        raise NotFound("no such batch")
    batch = services().store.get_batch(batch_id, g.tenant)
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


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """A cursor from :func:`encode_cursor`; InvalidRequest for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not text.startswith("o"):
            raise ValueError
        offset = int(text[1:])
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidRequest("`cursor` is not a cursor this API gave out", field="cursor") from None
    if offset < 0:
        raise InvalidRequest("`cursor` is not a cursor this API gave out", field="cursor")
    return offset


def _limit_arg() -> int:
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return PAGE_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest("`limit` must be an integer", field="limit") from None
    if not 1 <= value <= PAGE_MAX:
        raise InvalidRequest(f"`limit` must be between 1 and {PAGE_MAX}", field="limit")
    return value


def _status_arg() -> set[str] | None:
    raw = request.args.get("status")
    if not raw:
        return None
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        raise InvalidRequest(
            f"unknown status {', '.join(unknown)}; expected some of {', '.join(STATUSES)}",
            field="status",
        )
    return wanted


@bp.get("/<batch_id>/jobs")
@doc(
    summary="The batch's jobs, in item order, paginated",
    description="`?limit=` (1-1000, default 100), `?status=` (one status, or several "
    "separated by commas), `?cursor=` (the `next_cursor` of the previous page). With a "
    "status filter a page may hold fewer than `limit` jobs; go on while `next_cursor` "
    "is not null.",
    tags=["batches"],
    parameters=[
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
        {"name": "status", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
    ],
    responses={
        200: {
            "description": "a page of jobs",
            "schema": {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": ref("Job")},
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
        },
        400: {"description": "invalid_request (limit, status, cursor)", "problem": True},
        404: {"description": "not_found", "problem": True},
    },
)
def list_jobs(batch_id: str) -> Response:
    batch = load_batch(batch_id)
    limit = _limit_arg()
    wanted = _status_arg()
    offset = decode_cursor(request.args["cursor"]) if request.args.get("cursor") else 0
    store = services().store
    total = batch["counts"]["total"]
    found: list[dict[str, Any]] = []
    scanned = 0
    while offset < total and len(found) < limit and scanned < SCAN_MAX:
        # unfiltered, exactly the rest of the page; filtered, bigger steps
        step = limit - len(found) if wanted is None else min(SCAN_MAX - scanned, 500)
        ids = store.batch_job_ids(batch_id, offset, offset + step - 1)
        if not ids:
            break
        for job in store.get_jobs(ids):
            offset += 1
            scanned += 1
            if job is None or job.get("tenant") != batch.get("tenant"):
                continue
            if wanted is None or job["status"] in wanted:
                found.append(public_job(job))
                if len(found) == limit:
                    break
    next_cursor = encode_cursor(offset) if offset < total else None
    body = {"items": found, "next_cursor": next_cursor}
    return Response(json.dumps(body), mimetype="application/json")


# -- results.zip ------------------------------------------------------------------------


class _Sink(io.RawIOBase):
    """A write-only, non-seekable file that hands its bytes to the response generator."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def entry_name(job: dict[str, Any], extension: str, used: set[str]) -> str:
    """The result's file name in the zip, unique (case-insensitively) within it.

    From the item's metadata ``name`` or ``filename`` (or a multipart file's name):
    its stem, reduced to letters, digits, ``.``, ``_``, ``-``, with the result's
    extension; otherwise ``<item index:05d>_<job id>.<ext>``.
    """
    index = job.get("item_index") or 0
    metadata = job.get("metadata") or {}
    raw = (
        metadata.get("name")
        or metadata.get("filename")
        or (job.get("source") or {}).get("filename")
    )
    stem = ""
    if isinstance(raw, str):
        base = raw.replace("\\", "/").rsplit("/", 1)[-1]
        if "." in base.strip("."):
            base = base.rsplit(".", 1)[0]
        stem = _UNSAFE_NAME.sub("_", base).strip("._-")[:120]
    default = f"{index:05d}_{job['id']}"
    candidates = [f"{stem}.{extension}", f"{stem}_{index:05d}.{extension}"] if stem else []
    candidates.append(f"{default}.{extension}")
    for name in candidates:
        if name.lower() not in used and name.lower() != "manifest.csv":
            used.add(name.lower())
            return name
    used.add(f"{default}.{extension}".lower())
    return f"{default}.{extension}"


def _zip_time(stamp: str | None) -> tuple[int, int, int, int, int, int]:
    try:
        moment = datetime.fromisoformat((stamp or "").replace("Z", "+00:00"))
    except ValueError:
        moment = datetime.now()
    return (max(1980, moment.year), moment.month, moment.day, moment.hour, moment.minute,
            moment.second)  # fmt: skip


MANIFEST_COLUMNS = (
    "item_index",
    "job_id",
    "status",
    "error_code",
    "error_message",
    "file",
    "metadata",
)


def stream_zip(store: Any, storage: Any, batch: dict[str, Any]) -> Iterator[bytes]:
    """The zip of every succeeded result of ``batch`` and ``manifest.csv``, in chunks."""
    sink = _Sink()
    rows: list[list[Any]] = []
    used: set[str] = set()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for job in store.iter_batch_jobs(batch["id"]):
            if job.get("tenant") != batch.get("tenant"):
                continue
            error = job.get("error") or {}
            row = [
                job.get("item_index"),
                job["id"],
                job["status"],
                error.get("code") or "",
                error.get("message") or "",
                "",
                json.dumps(job.get("metadata") or {}, separators=(",", ":"), ensure_ascii=False),
            ]
            rows.append(row)
            result = job.get("result") or {}
            if job["status"] != "succeeded" or not result.get("key"):
                continue
            chunks = storage.stream(result["key"], ZIP_CHUNK)
            try:
                first = next(chunks, b"")
            except (NotFound, StorageError) as exc:
                # deleted by its owner, or storage trouble: say so instead of failing the zip
                row[3] = exc.code
                row[4] = "the result could not be read from storage"
                continue
            fmt = (job.get("options") or {}).get("format", "")
            extension = EXTENSIONS.get(fmt) or result["key"].rsplit(".", 1)[-1]
            name = entry_name(job, extension, used)
            info = zipfile.ZipInfo(name, _zip_time(job.get("finished_at")))
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = int(result.get("bytes") or 0)
            with archive.open(info, mode="w") as entry:
                entry.write(first)
                yield sink.drain()
                for chunk in chunks:
                    entry.write(chunk)
                    yield sink.drain()
            row[5] = name
            yield sink.drain()
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        rows.sort(key=lambda r: r[0] if r[0] is not None else -1)
        writer.writerows(rows)
        info = zipfile.ZipInfo("manifest.csv", _zip_time(now_iso()))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, text.getvalue().encode("utf-8"))
    yield sink.drain()


@bp.get("/<batch_id>/results.zip")
@doc(
    summary="Every finished result of the batch, and manifest.csv, as one zip",
    description="Streamed as it is written. Results are named after the item's metadata "
    "`name` or `filename` (or the multipart file's name) with the result's extension, "
    "else `<item index:05d>_<job id>.<ext>`; names are unique. `manifest.csv` lists every "
    "item: `item_index, job_id, status, error_code, error_message, file, metadata` "
    "(metadata as JSON). A running batch gives the results so far (`X-Batch-Status`).",
    tags=["batches"],
    responses={
        200: {"description": "the zip", "content_type": "application/zip"},
        404: {"description": "not_found", "problem": True},
    },
)
def results_zip(batch_id: str) -> Response:
    batch = load_batch(batch_id)
    svc = services()
    response = Response(stream_zip(svc.store, svc.storage, batch), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{batch_id}.zip"'
    response.headers["X-Batch-Status"] = batch.get("status") or "running"
    return response
