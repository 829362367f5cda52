"""Reading a ``POST /v1/batches`` request into validated items: pure, no servers.

Every item is judged before anything is stored; a bad one refuses the whole batch with
the problem's ``item`` naming its index. What needs storage (that an ``upload_key``
holds an object) is checked afterwards by ``api.batches.writes``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import FileStorage

from api.fields import check_url, form_option_values, parse_metadata, parse_webhook
from api.intake import check_image, own_upload_key, read_limited
from shared.errors import CutoutError, InvalidRequest, PayloadTooLarge, UploadNotFound
from shared.ids import new_id
from shared.limits import check_input, check_options
from shared.options import Options, parse_options
from shared.settings import Settings
from shared.shapes.requests import BatchCreate, BatchItem, check_members
from shared.storage import input_key


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


def batch_options(raw: Any, settings: Settings) -> Options:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidRequest("`options` must be a JSON object", field="options")
    options = parse_options(raw)
    check_options(options, settings)
    return options


def check_count(count: int, max_items: int) -> None:
    if count == 0:
        raise InvalidRequest("a batch needs at least one item", field="items")
    if count > max_items:
        raise PayloadTooLarge(
            f"the batch has {count} items, over the limit of {max_items}; split it",
            field="items",
        )


def parse_json(body: Any, settings: Settings, tenant: str) -> BatchRequest:
    """A JSON batch (:class:`shared.shapes.requests.BatchCreate`) → its items.

    Raises InvalidRequest, PayloadTooLarge (too many items), InvalidOption,
    UrlNotAllowed, UploadNotFound (another tenant's key); an item's error names it.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("the JSON body must be an object")
    check_members(BatchCreate, body)
    raw_items = body.get("items")
    if not isinstance(raw_items, list):
        raise InvalidRequest("`items` must be a list of objects", field="items")
    check_count(len(raw_items), settings.max_batch_items)
    options = batch_options(body.get("options"), settings)
    metadata = parse_metadata(body.get("metadata"))
    webhook = parse_webhook(body.get("webhook_url"), settings)
    items = []
    for index, raw in enumerate(raw_items):
        with item_errors(index):
            items.append(json_item(settings, tenant, index, raw, options))
    return BatchRequest(options, metadata, webhook, items)


def json_item(settings: Settings, tenant: str, index: int, raw: Any, base: Options) -> Item:
    if not isinstance(raw, dict):
        raise InvalidRequest("an item must be a JSON object", field="items")
    check_members(BatchItem, raw)
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
    options = parse_options(form_option_values(form))
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
