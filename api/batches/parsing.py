"""Reading a ``POST /v1/batches`` request into validated items: pure, no servers.

Every item is judged before anything is stored; a bad one refuses the whole batch with
the problem's ``item`` naming its index. What needs storage (that an ``upload_key``
holds an object) is checked afterwards by ``api.batches.writes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import FileStorage

from api.fields import check_url, form_option_values, parse_webhook
from api.intake import check_image, own_upload_key, read_limited
from api.models import model_check
from shared.contract.limits import check_input, check_options
from shared.contract.options import Options, parse_options
from shared.contract.settings import Settings
from shared.contract.shapes.jsontext import parse_metadata
from shared.contract.shapes.requests import (
    BatchCreate,
    BatchItem,
    check_count,
    item_errors,
    read_body,
)
from shared.errors import InvalidRequest, UploadNotFound
from shared.ids import new_id
from shared.s3.storage import input_key


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
class BatchRequest:
    options: Options
    metadata: dict[str, Any]
    webhook: dict[str, Any] | None
    items: list[Item]


def batch_options(raw: dict[str, Any] | None, settings: Settings) -> Options:
    options = parse_options(raw or {}, models=model_check())
    check_options(options, settings)
    return options


def parse_json(body: Any, settings: Settings, tenant: str) -> BatchRequest:
    """A JSON batch (:class:`shared.contract.shapes.requests.BatchCreate`) → its items.

    Raises InvalidRequest, PayloadTooLarge (too many items), InvalidOption,
    UrlNotAllowed, UploadNotFound (another tenant's key); an item's error names it.
    """
    batch = read_body(BatchCreate, body, max_items=settings.max_batch_items)
    options = batch_options(batch.options, settings)
    webhook = parse_webhook(batch.webhook_url, settings)
    items = []
    for index, item in enumerate(batch.items):
        with item_errors(index):
            items.append(json_item(settings, tenant, index, item, options))
    return BatchRequest(options, batch.metadata or {}, webhook, items)


def json_item(settings: Settings, tenant: str, index: int, item: BatchItem, base: Options) -> Item:
    options = base
    if item.options:
        options = parse_options(item.options, base=base, models=model_check())
        check_options(options, settings)
    metadata = item.metadata or {}
    job_id = new_id("job")
    if item.image_url is not None:
        url = check_url(item.image_url, "image_url", settings)
        return Item(index, job_id, options, metadata, {"kind": "url", "url": url})
    key = item.upload_key
    # another tenant's key reads exactly like a key that never held anything
    if not own_upload_key(tenant, key):
        raise UploadNotFound("no upload of yours under this upload_key", field="upload_key")
    return Item(index, job_id, options, metadata, {"kind": "upload"}, input_key=key)


def parse_multipart(
    form: Mapping[str, str],
    uploads: Sequence[FileStorage],
    file_fields: Sequence[str],
    settings: Settings,
    tenant: str,
) -> BatchRequest:
    """A multipart batch: ``images`` files and batch-level fields → its items.

    Each file's bytes are read (within the upload limit) and sniffed here; they are
    stored later, once every item passed. ``file_fields`` names the form's file fields,
    for the error when ``images`` is missing.
    """
    if not uploads:
        others = ", ".join(sorted(file_fields)) or "none"
        raise InvalidRequest(
            f"the multipart body has no `images` files (file fields: {others})", field="images"
        )
    check_count(len(uploads), settings.max_batch_items)
    options = parse_options(form_option_values(form), models=model_check())
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
        name = client_filename(upload.filename)
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
                input_key=input_key(tenant, job_id),
                upload=upload,
                fmt=fmt,
            )
        )
    return BatchRequest(options, metadata, webhook, items)


def client_filename(name: str | None) -> str | None:
    if not name:
        return None
    return name.replace("\\", "/").rsplit("/", 1)[-1][:255] or None
