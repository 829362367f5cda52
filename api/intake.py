"""Validating what a client sends and turning it into a durable, queued job.

Shared by ``POST /v1/jobs``, ``POST /v1/batches``, the rembg-compatible ``/api/remove``
and the remove.bg-compatible ``/v1.0/removebg``: limits are checked before any work
(bytes while reading, the format from the magic numbers, dimensions from the header
without decoding pixels), then the input is stored, then the record, and only then is
the task enqueued, so a worker never sees a job whose state is not yet durable. The
request fields jobs and batches share (metadata, URLs, webhooks) are :mod:`api.fields`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from flask import has_request_context

from api.fields import check_url
from api.models import pinned_sha256
from api.ratelimit import queue_slots
from shared.contract import imagecheck
from shared.contract.catalogue import background_key_allowed, plain_key
from shared.contract.limits import check_input, check_options
from shared.contract.options import MODELS, Options
from shared.contract.settings import Settings
from shared.contract.shapes.records import JobRecord
from shared.contract.tasks import INTERACTIVE, enqueue_job
from shared.errors import (
    CutoutError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UploadNotFound,
)
from shared.ids import new_id, now_iso
from shared.s3 import keys
from shared.s3.keys import input_key
from shared.s3.storage import Storage

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger("cutout.api")

# the format and limit checks are shared with the engine (shared/contract/imagecheck.py)
sniff_format = imagecheck.sniff
header_size = imagecheck.header_size
CONTENT_TYPES = imagecheck.CONTENT_TYPES


def check_image(data: bytes, settings: Settings) -> tuple[str, tuple[int, int]]:
    """Validate an input's bytes before any decoding: (format, (width, height)).

    Raises InvalidImage (empty, unreadable header), UnsupportedFormat (not one of JPEG,
    PNG, WebP, GIF, BMP, TIFF by its magic numbers), ImageTooLarge (a side or the pixels
    over the settings). See shared/contract/imagecheck.py.
    """
    return imagecheck.check_image(data, max_pixels=settings.max_pixels, max_side=settings.max_side)


def read_limited(stream: IO[bytes], limit: int) -> bytes:
    """Read at most ``limit`` bytes; PayloadTooLarge if there are more."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the image is larger than {limit} bytes")
    return data


def new_job_record(
    *,
    job_id: str,
    tenant: str,
    options: Options,
    source: dict[str, Any],
    input_key: str | None,
    metadata: dict[str, Any] | None = None,
    webhook: dict[str, Any] | None = None,
    queue: str = INTERACTIVE,
    batch_id: str | None = None,
) -> JobRecord:
    """The stored job record the worker reads (status ``queued``)."""
    return JobRecord.queued(
        id=job_id,
        tenant=tenant,
        created_at=now_iso(),
        options=options.stored(),
        batch_id=batch_id,
        metadata=metadata or {},
        webhook=webhook,
        input_key=input_key,
        source=source,
        queue=queue,
        model_sha256=pinned_model(options),
    )


def pinned_model(options: Options) -> str | None:
    """The sha256 of ``options.model`` when it is a custom model (api/models.py found it
    registered for this request's tenant when the options were parsed), else None."""
    if options.model in MODELS or not has_request_context():
        return None
    return pinned_sha256(options.model)


def own_upload_key(tenant: str, key: Any) -> bool:
    """Whether ``key`` can be an upload of ``tenant``: under its prefix, no ``..``, and
    printable ASCII (a lone surrogate would break the storage client: a 500)."""
    return isinstance(key, str) and plain_key(key) and keys.is_upload_of(key, tenant)


def check_upload_key(storage: Storage, settings: Settings, tenant: str, key: Any) -> str:
    """An ``upload_key`` of this tenant that holds an object within the size limit.

    Another tenant's key answers NotFound, exactly like a key that never existed in any
    form, so that keys of others cannot be probed.
    """
    if not own_upload_key(tenant, key):
        raise NotFound("no such upload_key", field="upload_key")
    try:
        head = storage.head(key)
    except NotFound:
        raise UploadNotFound(
            "nothing was uploaded under this upload_key (or it expired)", field="upload_key"
        ) from None
    if head["bytes"] > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"the uploaded object is {head['bytes']} bytes, over the limit of "
            f"{settings.max_upload_bytes}"
        )
    return key


def check_background(tenant: str, options: Options) -> None:
    """A ``bg_upload_key`` must be this tenant's (another's reads like a missing one);
    the worker checks it again and reads it with the input's byte limit."""
    key = options.bg_upload_key
    if key and not background_key_allowed(key, tenant):
        raise UploadNotFound("no upload of yours under this bg_upload_key", field="bg_upload_key")


def submit(services: Services, record: JobRecord) -> None:
    """Store the record, then enqueue it; a failed enqueue fails the job, never loses it."""
    services.store.create_job(record)
    try:
        enqueue_job(services.celery, record.id, record.queue or INTERACTIVE)
    except Exception as exc:  # noqa: BLE001 - kombu/redis raise many types; all mean "broker down"
        log.error("enqueue failed for %s: %s", record.id, type(exc).__name__)
        error = Unavailable("the queue is unavailable; the job was not started")
        # if the store is down too, the record simply expires with its TTL
        with contextlib.suppress(CutoutError):
            services.store.transition(
                record.id,
                "failed",
                ["queued"],
                error=error.to_job_error(),
                finished_at=now_iso(),
            )
        raise error from None
    services.metrics.job_created(record.stored())


def store_input(services: Services, tenant: str, job_id: str, data: bytes, fmt: str) -> str:
    key = input_key(tenant, job_id)
    services.storage.put(key, data, CONTENT_TYPES[fmt])
    return key


def job_from_bytes(
    services: Services,
    tenant: str,
    data: bytes,
    options: Options,
    *,
    metadata: Mapping[str, Any] | None = None,
    webhook: dict[str, Any] | None = None,
    job_id: str | None = None,
) -> JobRecord:
    """Validate image bytes, store them, create and enqueue the job; returns the record."""
    check_background(tenant, options)
    check_options(options, services.settings)
    fmt, size = check_image(data, services.settings)
    check_input(options, size, services.settings)
    job_id = job_id or new_id("job")
    # the tenant's queue cap, before any bytes are stored
    with queue_slots(services, tenant, [job_id]):
        key = store_input(services, tenant, job_id, data, fmt)
        record = new_job_record(
            job_id=job_id,
            tenant=tenant,
            options=options,
            source={"kind": "upload"},
            input_key=key,
            metadata=dict(metadata or {}),
            webhook=webhook,
        )
        submit(services, record)
    return record


def job_from_url(
    services: Services,
    tenant: str,
    url: str,
    options: Options,
    *,
    metadata: Mapping[str, Any] | None = None,
    webhook: dict[str, Any] | None = None,
    field: str = "image_url",
    job_id: str | None = None,
) -> JobRecord:
    """A job whose input the worker fetches from ``url`` under the SSRF guard."""
    check_background(tenant, options)
    check_options(options, services.settings)
    record = new_job_record(
        job_id=job_id or new_id("job"),
        tenant=tenant,
        options=options,
        source={"kind": "url", "url": check_url(url, field, services.settings)},
        input_key=None,
        metadata=dict(metadata or {}),
        webhook=webhook,
    )
    with queue_slots(services, tenant, [record.id]):
        submit(services, record)
    return record


def job_from_upload(
    services: Services,
    tenant: str,
    key: str,
    options: Options,
    *,
    metadata: Mapping[str, Any] | None = None,
    webhook: dict[str, Any] | None = None,
) -> JobRecord:
    """A job on a direct upload; the worker sniffs and limits the bytes again."""
    check_background(tenant, options)
    check_options(options, services.settings)
    key = check_upload_key(services.storage, services.settings, tenant, key)
    record = new_job_record(
        job_id=new_id("job"),
        tenant=tenant,
        options=options,
        source={"kind": "upload"},
        input_key=key,
        metadata=dict(metadata or {}),
        webhook=webhook,
    )
    with queue_slots(services, tenant, [record.id]):
        submit(services, record)
    return record
