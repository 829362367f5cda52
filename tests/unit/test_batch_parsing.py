"""`POST /v1/batches` request reading (api/batches/parsing.py) and listing arguments
(api/batches/pages.py), without servers: the same cases the integration tests send
through the API (tests/integration/test_batches.py), judged here on the parser alone."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict

from api.batches import pages
from api.batches.parsing import BatchRequest, parse_json, parse_multipart
from shared.contract.settings import Settings, load_settings
from shared.errors import CutoutError
from shared.s3.storage import input_key

GOOD = {"image_url": "https://images.example.com/a.jpg"}


@pytest.fixture
def settings() -> Settings:
    return load_settings({}, max_batch_items=50)


def refused(call: Callable[[], Any], status: int, code: str) -> CutoutError:
    with pytest.raises(CutoutError) as caught:
        call()
    error = caught.value
    assert (error.status, error.code) == (status, code), error.message
    return error


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_json_batches_refused_whole_naming_the_item(settings: Settings) -> None:
    def parse(body: Any) -> BatchRequest:
        return parse_json(body, settings, "a")

    refused(lambda: parse({"items": []}), 400, "invalid_request")
    refused(lambda: parse({"items": "x"}), 400, "invalid_request")
    error = refused(lambda: parse({"items": [GOOD], "colour": 1}), 400, "invalid_request")
    assert error.message == (
        "unknown field(s) colour; expected items, metadata, options, webhook_url"
    )
    error = refused(lambda: parse([GOOD]), 400, "invalid_request")
    assert error.message == "the JSON body must be an object"
    error = refused(lambda: parse({"items": [GOOD, {}]}), 400, "invalid_request")
    assert error.extra["item"] == 1
    assert error.message == "items[1]: send exactly one of `upload_key` and `image_url`"
    both = {**GOOD, "upload_key": "uploads/a/x"}
    assert (
        refused(lambda: parse({"items": [GOOD, both]}), 400, "invalid_request").extra["item"] == 1
    )
    error = refused(
        lambda: parse({"items": [GOOD, GOOD, {**GOOD, "x": 1}]}), 400, "invalid_request"
    )
    assert error.extra["item"] == 2
    assert "expected image_url, metadata, options, upload_key" in error.message
    assert refused(lambda: parse({"items": [GOOD, 5]}), 400, "invalid_request").extra["item"] == 1
    nope = {**GOOD, "options": {"model": "nope"}}
    error = refused(lambda: parse({"items": [GOOD, GOOD, GOOD, nope]}), 422, "invalid_option")
    assert error.extra["item"] == 3
    assert error.extra["option"] == "model"
    assert "items[3]" in error.message
    # item options on top of the batch's: jpeg needs a bg_color from one or the other
    jpeg = {**GOOD, "options": {"format": "jpeg"}}
    assert refused(lambda: parse({"items": [jpeg]}), 422, "invalid_option").extra["item"] == 0
    parsed = parse({"items": [jpeg], "options": {"bg_color": "#ffffff"}})
    assert parsed.items[0].options.format == "jpeg"
    assert parsed.items[0].source == {"kind": "url", "url": GOOD["image_url"]}
    error = refused(
        lambda: parse({"items": [GOOD], "options": {"model": "x"}}), 422, "invalid_option"
    )
    assert "item" not in error.extra
    for url, index in (("file:///etc/passwd", 0), ("http://10.1.2.3/a.png", 1)):
        items = [GOOD] * index + [{"image_url": url}]
        error = refused(lambda items=items: parse({"items": items}), 422, "url_not_allowed")
        assert error.extra["item"] == index
    error = refused(
        lambda: parse({"items": [GOOD], "webhook_url": "http://169.254.169.254/"}),
        422,
        "url_not_allowed",
    )
    assert error.extra["field"] == "webhook_url"
    meta = {**GOOD, "metadata": [1]}
    assert refused(lambda: parse({"items": [meta]}), 400, "invalid_request").extra["item"] == 0
    # over CUTOUT_MAX_BATCH_ITEMS (50 here)
    error = refused(lambda: parse({"items": [GOOD] * 51}), 413, "payload_too_large")
    assert "50" in error.message


def test_upload_keys_of_other_tenants_read_as_missing(settings: Settings) -> None:
    parsed = parse_json({"items": [{"upload_key": "uploads/a/upl_1"}]}, settings, "a")
    assert parsed.items[0].input_key == "uploads/a/upl_1"
    error = refused(
        lambda: parse_json({"items": [GOOD, {"upload_key": "uploads/a/x"}]}, settings, "b"),
        422,
        "upload_not_found",
    )
    assert error.extra["item"] == 1


def files(*contents: bytes) -> list[FileStorage]:
    return [
        FileStorage(io.BytesIO(data), filename=f"dir/{i}.png") for i, data in enumerate(contents)
    ]


def test_multipart_batches(settings: Settings) -> None:
    def parse(uploads: list[FileStorage], **fields: str) -> BatchRequest:
        names = ["images"] if uploads else ["image"]
        return parse_multipart(MultiDict(fields), uploads, names, settings, "a")

    error = refused(lambda: parse(files(photo(), b"text" * 50)), 415, "unsupported_format")
    assert error.extra["item"] == 1
    assert refused(lambda: parse(files(photo(), b"")), 422, "invalid_image").extra["item"] == 1
    refused(lambda: parse(files(photo()), model="x"), 422, "invalid_option")
    error = refused(lambda: parse([]), 400, "invalid_request")
    assert error.message == "the multipart body has no `images` files (file fields: image)"
    parsed = parse(files(photo(), photo()), format="webp")
    assert [item.source for item in parsed.items] == [
        {"kind": "upload", "filename": "0.png"},
        {"kind": "upload", "filename": "1.png"},
    ]
    assert all(item.fmt == "png" and item.options.format == "webp" for item in parsed.items)
    assert parsed.items[1].input_key == input_key("a", parsed.items[1].job_id)


def test_listing_arguments() -> None:
    assert pages.limit_arg({}) == pages.PAGE_DEFAULT
    assert pages.limit_arg({"limit": "10"}) == 10
    for args in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"status": "done"}):
        refused(
            lambda args=args: (pages.limit_arg(args), pages.status_arg(args)),
            400,
            "invalid_request",
        )
    assert pages.status_arg({"status": "processing, failed"}) == {"processing", "failed"}
    assert pages.decode_cursor(pages.encode_cursor(25)) == 25
    for cursor in ("zz", pages.encode_cursor(-1), "eDE"):
        refused(lambda cursor=cursor: pages.decode_cursor(cursor), 400, "invalid_request")
