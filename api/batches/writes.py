"""Storing an accepted batch: its upload checks, multipart inputs, records and the
one task that sends its items' messages.

Jobs are durable before any message exists, so a worker never sees a half-made batch:
the batch record, then its job records in pipelined chunks (all ``queued``), then ONE
task (``cutout.enqueue_batch``, on ``interactive`` so that it runs at once) sends the
items' ``process_job`` messages to ``bulk``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import FileStorage

from api.batches.parsing import BatchRequest, Item
from api.intake import CONTENT_TYPES, check_upload_key, new_job_record, read_limited
from shared.contract.shapes.records import BatchRecord
from shared.contract.shapes.requests import for_item
from shared.contract.tasks import BULK, ENQUEUE_BATCH, INTERACTIVE
from shared.errors import CutoutError, NotFound, PayloadTooLarge, Unavailable, UploadNotFound
from shared.ids import now_iso
from shared.s3.keys import upload_prefix

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger("cutout.api")

STORE_CHUNK = 500  # job records per pipelined write
IO_THREADS = 8  # concurrent storage calls (upload_key checks, multipart inputs)
LIST_ABOVE = 20  # more upload_keys than this are checked by listing, not one HEAD each


def _not_uploaded(index: int) -> CutoutError:
    return for_item(
        UploadNotFound(
            "nothing was uploaded under this upload_key (or it expired)", field="upload_key"
        ),
        index,
    )


def check_upload_keys(svc: Services, tenant: str, items: list[Item]) -> None:
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
        _list_upload_keys(svc, tenant, items)
        return

    def check(item: Item) -> CutoutError | None:
        try:
            check_upload_key(svc.storage, svc.settings, tenant, item.input_key)
        except NotFound:
            return _not_uploaded(item.index)
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


def _list_upload_keys(svc: Services, tenant: str, items: list[Item]) -> None:
    wanted = {item.input_key for item in items if item.input_key}
    sizes = svc.storage.sizes_from(upload_prefix(tenant), min(wanted), max(wanted))
    limit = svc.settings.max_upload_bytes
    for item in items:
        size = sizes.get(item.input_key or "")
        if size is None:
            raise _not_uploaded(item.index)
        if size > limit:
            raise for_item(
                PayloadTooLarge(f"the uploaded object is {size} bytes, over the limit of {limit}"),
                item.index,
            )


def store_uploads(svc: Services, items: list[Item]) -> None:
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


def store_batch(svc: Services, tenant: str, batch_id: str, parsed: BatchRequest) -> None:
    """The batch record, then its job records in pipelined chunks (all `queued`)."""
    batch = BatchRecord(
        id=batch_id,
        tenant=tenant,
        status="running",
        created_at=now_iso(),
        # no finished_at member: the store sets it exactly once, when the batch completes
        options=parsed.options.stored(),
        metadata=parsed.metadata,
        webhook=parsed.webhook,
        enqueued=0,  # the fair dispatcher's cursor (worker/fair.py)
    )
    svc.store.create_batch(batch, total=len(parsed.items))
    for start in range(0, len(parsed.items), STORE_CHUNK):
        chunk: list[Mapping[str, Any]] = []
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
            record.item_index = item.index
            # members still empty are left out (readers treat a missing member as None):
            # a third fewer arguments to pack, which is most of the time a batch takes
            chunk.append(record.stored(drop_empty=True))
        svc.store.add_batch_jobs(batch_id, chunk)


def enqueue(svc: Services, batch_id: str, job_ids: list[str]) -> None:
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
