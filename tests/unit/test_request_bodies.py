"""The refusals of malformed JSON request bodies, pinned word for word: `POST /v1/jobs`
through the app (built against addresses nothing listens on: each refusal here comes
before any server is needed) and `POST /v1/batches` through its parser. The bodies are
validated by the models of shared/contract/shapes/requests.py; their codes, messages and `field`
are the API's contract."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from api.app import create_app
from api.batches.parsing import parse_json
from shared.contract.settings import load_settings
from shared.errors import CutoutError

URL = "https://images.example.com/a.jpg"
JOB_MEMBERS = "image_url, metadata, options, upload_key, webhook_url"


@pytest.fixture
def app() -> Flask:
    logging.getLogger("cutout").setLevel(logging.CRITICAL)  # "rate limit unavailable"
    return create_app(
        load_settings(
            {},
            redis_url="redis://127.0.0.1:1/0",
            s3_endpoint_url="http://127.0.0.1:1",
            max_upload_bytes=1000,
        )
    )


JOB_REFUSALS: list[tuple[Any, int, str, str, str | None]] = [
    ([1], 400, "invalid_request", "the JSON body must be an object", None),
    ("x", 400, "invalid_request", "the JSON body must be an object", None),
    ({"x": 1, "a": 2}, 400, "invalid_request",
     f"unknown field(s) a, x; expected {JOB_MEMBERS}", None),
    ({"image_url": URL, "colour": 1}, 400, "invalid_request",
     f"unknown field(s) colour; expected {JOB_MEMBERS}", None),
    ({}, 400, "invalid_request", "send exactly one of `upload_key` and `image_url`", None),
    ({"options": {}}, 400, "invalid_request",
     "send exactly one of `upload_key` and `image_url`", None),
    ({"image_url": URL, "upload_key": "uploads/public/upl_1"}, 400, "invalid_request",
     "send exactly one of `upload_key` and `image_url`", None),
    ({"upload_key": 1}, 404, "not_found", "no such upload_key", "upload_key"),
    ({"upload_key": None}, 404, "not_found", "no such upload_key", "upload_key"),
    ({"upload_key": "uploads/other/upl_1"}, 404, "not_found", "no such upload_key",
     "upload_key"),
    ({"image_url": 5}, 400, "invalid_request", "image_url must be a URL string", "image_url"),
    ({"image_url": None}, 400, "invalid_request", "image_url must be a URL string",
     "image_url"),
    ({"image_url": "  "}, 400, "invalid_request", "image_url must be a URL string",
     "image_url"),
    ({"image_url": "http://10.0.0.1/a.png"}, 422, "url_not_allowed", None, "image_url"),
    ({"image_url": URL, "options": "x"}, 400, "invalid_request",
     "`options` must be a JSON object", None),
    ({"image_url": URL, "options": [1]}, 400, "invalid_request",
     "`options` must be a JSON object", None),
    ({"image_url": URL, "options": {"format": "nope"}}, 422, "invalid_option", None, None),
    ({"image_url": URL, "metadata": [1]}, 400, "invalid_request",
     "metadata must be a JSON object", "metadata"),
    ({"image_url": URL, "metadata": "[]"}, 400, "invalid_request",
     "metadata must be a JSON object", "metadata"),
    ({"image_url": URL, "webhook_url": 3}, 400, "invalid_request",
     "webhook_url must be a URL string", "webhook_url"),
    ({"image_url": URL, "webhook_url": "http://169.254.169.254/"}, 422, "url_not_allowed",
     None, "webhook_url"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "code", "message", "field"), JOB_REFUSALS)
def test_job_bodies_are_refused_with_their_stable_problem(
    app: Flask, body: Any, status: int, code: str, message: str | None, field: str | None
) -> None:
    response = app.test_client().post("/v1/jobs", json=body)
    problem = response.get_json()
    assert (response.status_code, problem["code"]) == (status, code), problem
    if message is not None:
        assert problem["detail"] == message
    assert problem.get("field") == field


def test_a_job_body_with_two_faults_answers_for_the_first_checked(app: Flask) -> None:
    # members first, then the input's one-of rule, then the values
    body = {"image_url": URL, "upload_key": "k", "metadata": [1], "x": 1}
    problem = app.test_client().post("/v1/jobs", json=body).get_json()
    assert problem["detail"] == f"unknown field(s) x; expected {JOB_MEMBERS}"
    body = {"image_url": URL, "upload_key": "k", "metadata": [1]}
    problem = app.test_client().post("/v1/jobs", json=body).get_json()
    assert problem["detail"] == "send exactly one of `upload_key` and `image_url`"


BATCH_REFUSALS: list[tuple[Any, int, str, str, dict[str, Any]]] = [
    ({}, 400, "invalid_request", "`items` must be a list of objects", {"field": "items"}),
    ({"items": None}, 400, "invalid_request", "`items` must be a list of objects",
     {"field": "items"}),
    ({"items": {"image_url": URL}}, 400, "invalid_request",
     "`items` must be a list of objects", {"field": "items"}),
    ({"items": []}, 400, "invalid_request", "a batch needs at least one item",
     {"field": "items"}),
    ({"items": [{"image_url": URL}], "options": "x"}, 400, "invalid_request",
     "`options` must be a JSON object", {"field": "options"}),
    ({"items": [{"image_url": URL}], "options": []}, 400, "invalid_request",
     "`options` must be a JSON object", {"field": "options"}),
    ({"items": [{"image_url": URL}], "metadata": 5}, 400, "invalid_request",
     "metadata must be a JSON object", {"field": "metadata"}),
    ({"items": [{"image_url": URL}], "webhook_url": 5}, 400, "invalid_request",
     "webhook_url must be a URL string", {"field": "webhook_url"}),
    ({"items": [{"image_url": URL}, 5]}, 400, "invalid_request",
     "items[1]: an item must be a JSON object", {"field": "items", "item": 1}),
    ({"items": [{"image_url": URL, "options": []}]}, 400, "invalid_request",
     "items[0]: `options` must be a JSON object", {"field": "options", "item": 0}),
    ({"items": [{"image_url": 5}]}, 400, "invalid_request",
     "items[0]: image_url must be a URL string", {"field": "image_url", "item": 0}),
    ({"items": [{"image_url": None}]}, 400, "invalid_request",
     "items[0]: image_url must be a URL string", {"field": "image_url", "item": 0}),
    ({"items": [{"upload_key": 3}]}, 422, "upload_not_found",
     "items[0]: no upload of yours under this upload_key",
     {"field": "upload_key", "item": 0}),
    ({"items": [{"upload_key": None}]}, 422, "upload_not_found",
     "items[0]: no upload of yours under this upload_key",
     {"field": "upload_key", "item": 0}),
    ({"items": [{"image_url": URL, "metadata": "[1]"}]}, 400, "invalid_request",
     "items[0]: metadata must be a JSON object", {"field": "metadata", "item": 0}),
    ({"items": [{"image_url": URL, "webhook_url": URL}]}, 400, "invalid_request",
     "items[0]: unknown field(s) webhook_url; expected image_url, metadata, options, "
     "upload_key", {"item": 0}),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "code", "message", "extra"), BATCH_REFUSALS)
def test_batch_bodies_are_refused_with_their_stable_problem(
    body: Any, status: int, code: str, message: str, extra: dict[str, Any]
) -> None:
    settings = load_settings({}, max_batch_items=50)
    with pytest.raises(CutoutError) as caught:
        parse_json(body, settings, "a")
    error = caught.value
    assert (error.status, error.code, error.message) == (status, code, message)
    assert error.extra == extra


def test_batch_item_options_may_be_absent_or_empty() -> None:
    settings = load_settings({}, max_batch_items=50)
    body = {"items": [{"image_url": URL, "options": {}}, {"image_url": URL, "options": None}]}
    parsed = parse_json({**body, "options": {"format": "webp"}}, settings, "a")
    assert [item.options.format for item in parsed.items] == ["webp", "webp"]
    parsed = parse_json({**body, "options": None, "metadata": None}, settings, "a")
    assert parsed.metadata == {}
    # metadata as the JSON text of an object is read as that object, as in a form
    parsed = parse_json({**body, "metadata": '{"a": 1}'}, settings, "a")
    assert parsed.metadata == {"a": 1}
    assert parsed.webhook is None


REQUIRED = (
    "`bytes` (the exact size of each file) or `sizes` (one per file) is required: the size "
    "is signed into the upload URL"
)
SIZES = "`sizes` must be a list of 1 to 100 byte counts"
TYPES = (
    "`content_type` must be one of application/octet-stream, image/bmp, image/gif, "
    "image/jpeg, image/png, image/tiff, image/webp"
)
UPLOAD_REFUSALS: list[tuple[Any, int, str, str, str | None]] = [
    ([1], 400, "invalid_request", "the JSON body must be an object", None),
    ({"x": 1}, 400, "invalid_request",
     "unknown field(s) x; expected bytes, content_type, count, sizes", None),
    ({"count": "2", "bytes": 5}, 400, "invalid_request", "`count` must be an integer", "count"),
    ({"count": True, "bytes": 5}, 400, "invalid_request", "`count` must be an integer", "count"),
    ({"count": 0, "bytes": 5}, 400, "invalid_request", "`count` must be between 1 and 100",
     "count"),
    ({"count": 101, "bytes": 5}, 400, "invalid_request", "`count` must be between 1 and 100",
     "count"),
    ({"count": None, "bytes": 5}, 400, "invalid_request", "`count` must be between 1 and 100",
     "count"),
    ({"count": 2}, 400, "invalid_request", REQUIRED, "bytes"),
    ({}, 400, "invalid_request", REQUIRED, "bytes"),
    ({"bytes": None}, 400, "invalid_request", REQUIRED, "bytes"),
    ({"bytes": "5"}, 400, "invalid_request", "`bytes` must hold integers", "bytes"),
    ({"bytes": 5.0}, 400, "invalid_request", "`bytes` must hold integers", "bytes"),
    ({"bytes": 0}, 400, "invalid_request", "`bytes` must be positive", "bytes"),
    ({"bytes": 1001}, 413, "payload_too_large",
     "`bytes`: 1001 bytes is over the upload limit of 1000", None),
    ({"sizes": "x"}, 400, "invalid_request", SIZES, "sizes"),
    ({"sizes": None}, 400, "invalid_request", SIZES, "sizes"),
    ({"sizes": []}, 400, "invalid_request", SIZES, "sizes"),
    ({"sizes": [1] * 101}, 400, "invalid_request", SIZES, "sizes"),
    ({"sizes": [5], "bytes": 5}, 400, "invalid_request", "send `bytes` or `sizes`, not both",
     "sizes"),
    ({"sizes": [5], "count": 2}, 400, "invalid_request",
     "`count` must equal the length of `sizes`", "count"),
    ({"sizes": [5, "x"]}, 400, "invalid_request", "`sizes` must hold integers", "sizes"),
    ({"sizes": [5, 0]}, 400, "invalid_request", "`sizes` must be positive", "sizes"),
    ({"sizes": [5, 1001]}, 413, "payload_too_large",
     "`sizes`: 1001 bytes is over the upload limit of 1000", None),
    ({"bytes": 5, "content_type": "text/plain"}, 400, "invalid_request", TYPES, "content_type"),
    ({"bytes": 5, "content_type": 5}, 400, "invalid_request", TYPES, "content_type"),
    ({"bytes": "5", "content_type": 5}, 400, "invalid_request", "`bytes` must hold integers",
     "bytes"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "code", "message", "field"), UPLOAD_REFUSALS)
def test_upload_bodies_are_refused_with_their_stable_problem(
    app: Flask, body: Any, status: int, code: str, message: str, field: str | None
) -> None:
    response = app.test_client().post("/v1/uploads", json=body)
    problem = response.get_json()
    assert (response.status_code, problem["code"], problem["detail"]) == (status, code, message)
    assert problem.get("field") == field


def test_an_upload_request_without_a_body_needs_its_sizes(app: Flask) -> None:
    problem = app.test_client().post("/v1/uploads").get_json()
    assert (problem["detail"], problem["field"]) == (REQUIRED, "bytes")
