"""Pure parts of the API: problem rendering, auth parsing, intake checks, rembg parameters,
and the OpenAPI document's completeness. No servers: the app is built against addresses
nothing listens on (building it connects to nothing), and no request here reaches them.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import zlib

import pytest
from flask import Flask
from PIL import Image

from api.app import create_app
from api.auth import BindRefused, check_bind, is_loopback, parse_bearer, tenant_for_request
from api.errors import problem_response
from api.fields import check_url
from api.intake import check_image, read_limited, sniff_format
from api.openapi import HIDDEN_ATTR, build_document, openapi_path
from api.rembg_compat import parse_bgc, rembg_options
from shared.contract.options import OPTION_NAMES
from shared.contract.settings import Settings, load_settings
from shared.contract.shapes.jsontext import parse_metadata
from shared.contract.shapes.records import JobRecord
from shared.errors import (
    CutoutError,
    ImageTooLarge,
    InvalidImage,
    InvalidOption,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedFormat,
    UrlNotAllowed,
)

KEY = "a-key-that-is-long-enough"


def settings(**overrides: object) -> Settings:
    values = {"redis_url": "redis://127.0.0.1:1/0", "s3_endpoint_url": "http://127.0.0.1:1"}
    values.update(overrides)
    return load_settings({}, **values)


@pytest.fixture
def app() -> Flask:
    return create_app(settings())


def encoded(fmt: str, size: tuple[int, int] = (5, 4), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# -- problems --------------------------------------------------------------------------


def test_problem_response_has_every_member_and_the_media_type() -> None:
    response = problem_response(InvalidOption("bad model", option="model"))
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = json.loads(response.get_data())
    assert body == {
        "type": "https://cutout.dev/problems/invalid_option",
        "title": "An option has an invalid value",
        "status": 422,
        "detail": "bad model",
        "code": "invalid_option",
        "option": "model",
    }


def test_error_headers_travel_with_the_problem() -> None:
    error = Unauthorized("no key")
    error.headers = {"WWW-Authenticate": "Bearer"}  # type: ignore[attr-defined]
    assert problem_response(error).headers["WWW-Authenticate"] == "Bearer"


def test_unexpected_errors_are_500_without_details(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret path /etc/cutout/key")

    with caplog.at_level(logging.ERROR, logger="cutout.api"):
        response = app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_json(force=True)
    assert body["code"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)
    assert any(record.exc_info for record in caplog.records)  # the traceback is logged


def test_http_errors_map_to_codes(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/no/such/route").get_json(force=True)["code"] == "not_found"
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.get_json(force=True)["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]
    big = client.post("/v1/jobs", data=b"x" * 10, environ_overrides={"CONTENT_LENGTH": str(10**10)})
    assert big.status_code == 413
    assert big.get_json(force=True)["code"] == "payload_too_large"


# -- auth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer a b", None),
        (f"Bearer {KEY}", KEY),
    ],
)
def test_parse_bearer(header: str | None, token: str | None) -> None:
    assert parse_bearer(header) == token


def test_tenant_for_request() -> None:
    open_settings = settings()
    assert tenant_for_request(open_settings, None) == "public"
    keyed = settings(api_keys={KEY: "acme"})
    assert tenant_for_request(keyed, f"Bearer {KEY}") == "acme"
    with pytest.raises(Unauthorized) as missing:
        tenant_for_request(keyed, None)
    assert missing.value.headers["WWW-Authenticate"].startswith("Bearer")  # type: ignore[attr-defined]
    with pytest.raises(Unauthorized) as wrong:
        tenant_for_request(keyed, "Bearer not-the-key-at-all")
    assert "invalid_token" in wrong.value.headers["WWW-Authenticate"]  # type: ignore[attr-defined]
    # CUTOUT_AUTH=off: keys are ignored, everyone is "public"
    assert tenant_for_request(settings(api_keys={KEY: "acme"}, auth="off"), None) == "public"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_check_bind(caplog: pytest.LogCaptureFixture) -> None:
    check_bind(settings())  # loopback, no keys
    check_bind(settings(host="0.0.0.0", api_keys={KEY: "acme"}))
    with pytest.raises(BindRefused, match="CUTOUT_API_KEYS"):
        check_bind(settings(host="0.0.0.0"))
    with pytest.raises(BindRefused, match="CUTOUT_AUTH"):
        check_bind(settings(auth="on"))
    with caplog.at_level(logging.WARNING, logger="cutout.api"):
        check_bind(settings(host="0.0.0.0", auth="off"))
    assert "OFF" in caplog.text
    with pytest.raises(BindRefused):
        create_app(settings(host="0.0.0.0"))


def test_protected_routes_need_a_key_health_does_not() -> None:
    client = create_app(settings(api_keys={KEY: "acme"})).test_client()
    for path in ("/v1/jobs/x", "/v1/anything", "/api/remove"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.get_json(force=True)["code"] == "unauthorized"
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    ("webhook_url", "network"),
    [("http://127.0.0.1:9000/hook", "127.0.0.0/8"), ("http://[::1]:9000/hook", "::1/128")],
)
def test_a_loopback_webhook_is_refused_with_the_setting_that_allows_it(
    app: Flask, webhook_url: str, network: str
) -> None:
    response = app.test_client().post(
        "/v1/jobs", json={"image_url": "https://example.com/a.jpg", "webhook_url": webhook_url}
    )
    assert response.status_code == 422
    problem = json.loads(response.get_data())
    assert problem["code"] == "url_not_allowed"
    assert problem["detail"] == (
        "webhook_url: the address is loopback; to allow it for local testing set "
        f"CUTOUT_ALLOWED_PRIVATE_NETWORKS={network}"
    )


# -- intake ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("PNG", "png"),
        ("JPEG", "jpeg"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
    ],
)
def test_sniff_and_check_every_format(fmt: str, name: str) -> None:
    data = encoded(fmt)
    assert sniff_format(data) == name
    assert check_image(data, settings()) == (name, (5, 4))


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body>hi</body></html>",
        b"%PDF-1.7",
        b"PK\x03\x04zip",
        b"<svg xmlns=",
        b"\x00" * 64,
        b"GIF88a",
        b"RIFF\x00\x00\x00\x00WAVE",
    ],
)
def test_non_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat):
        check_image(data, settings())


def test_empty_and_broken_headers_are_invalid_image() -> None:
    with pytest.raises(InvalidImage):
        check_image(b"", settings())
    with pytest.raises(InvalidImage):
        check_image(encoded("PNG")[:12], settings())
    with pytest.raises(InvalidImage):
        check_image(b"\xff\xd8\xff\xe0" + b"\x00" * 30, settings())
    with pytest.raises(InvalidImage):
        check_image(png_header(0, 10), settings())


@pytest.mark.parametrize(
    "size",
    [
        (100_000, 100_000),  # Pillow's own bomb guard (over 2x its limit)
        (12_000, 12_000),  # between 1x and 2x Pillow's limit: a warning there, ours refuses
        (8_000, 7_000),  # under Pillow's limit, over our 50 MP
        (25_000, 20),  # a side over max_side (20,000)
    ],
)
def test_oversize_headers_are_image_too_large(size: tuple[int, int]) -> None:
    with pytest.raises(ImageTooLarge):
        check_image(png_header(*size), settings())


def test_limits_come_from_settings() -> None:
    data = png_header(300, 200)
    assert check_image(data, settings())[1] == (300, 200)
    with pytest.raises(ImageTooLarge):
        check_image(data, settings(max_pixels=59_999))
    with pytest.raises(ImageTooLarge):
        check_image(data, settings(max_side=299))


def test_read_limited() -> None:
    assert read_limited(io.BytesIO(b"x" * 10), 10) == b"x" * 10
    with pytest.raises(PayloadTooLarge):
        read_limited(io.BytesIO(b"x" * 11), 10)


def test_parse_metadata() -> None:
    assert parse_metadata(None) == {}
    assert parse_metadata('{"a": 1}') == {"a": 1}
    assert parse_metadata({"a": [1]}) == {"a": [1]}
    for bad in ("[1]", "nope", 5, {"x": "y" * 16_500}):
        with pytest.raises(InvalidRequest):
            parse_metadata(bad)


def test_check_url() -> None:
    plain = settings()
    assert check_url("https://example.com/a.png", "image_url", plain)
    for bad in (
        "ftp://example.com/a",
        "file:///etc/passwd",
        "http://10.0.0.1/",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "http://user:pw@x.com/",
        "https://x.com/" + "a" * 3000,
    ):
        with pytest.raises(UrlNotAllowed):
            check_url(bad, "image_url", plain)
    with pytest.raises(InvalidRequest):
        check_url(42, "image_url", plain)
    import ipaddress

    opened = settings(allowed_private_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    assert check_url("http://10.0.0.1/", "image_url", opened)


# -- rembg parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(255, 255, 255, 255)", "255,255,255,255"),
        ("[0,0,0]", "0,0,0"),
        ("255,0,0,128", "255,0,0,128"),
        ("#ff0000", "#ff0000"),
        ("", None),
        (" ( ) ", None),
    ],
)
def test_parse_bgc(text: str, expected: str | None) -> None:
    assert parse_bgc(text) == expected


def test_rembg_options_map_onto_ours() -> None:
    options = rembg_options(
        {
            "model": "u2netp",
            "a": "true",
            "af": "230",
            "ab": "20",
            "ae": "5",
            "om": "false",
            "ppm": "true",
            "bgc": "(255, 255, 255, 255)",
            "extras": "{}",
        }
    )
    assert options.model == "u2netp"
    assert options.alpha_matting is True
    assert options.alpha_matting_foreground_threshold == 230
    assert options.alpha_matting_background_threshold == 20
    assert options.alpha_matting_erode_size == 5
    assert options.mask_only is False
    assert options.post_process is True
    assert options.bg_color == (255, 255, 255, 255)
    assert rembg_options({"om": "1"}).mask_only is True
    # our own names work too, and empty fields mean the defaults
    assert rembg_options({"format": "webp", "a": "", "bgc": ""}).format == "webp"
    assert rembg_options({}).stored() == rembg_options({"model": "u2net"}).stored()


def test_rembg_options_name_the_bad_parameter() -> None:
    with pytest.raises(InvalidOption) as error:
        rembg_options({"model": "isnet-general-use"})
    assert error.value.extra["option"] == "model"
    with pytest.raises(InvalidOption) as error:
        rembg_options({"af": "300"})
    assert error.value.extra["option"] == "alpha_matting_foreground_threshold"
    with pytest.raises(InvalidOption):
        rembg_options({"bgc": "(1, 2)"})


# -- OpenAPI ---------------------------------------------------------------------------


def test_openapi_path() -> None:
    assert openapi_path("/v1/jobs/<job_id>/result") == (
        "/v1/jobs/{job_id}/result",
        [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
    )
    assert openapi_path("/x/<int:n>")[0] == "/x/{n}"
    assert openapi_path("/x/<int:n>")[1][0]["schema"] == {"type": "integer"}


def test_openapi_lists_every_route_and_method_documented(app: Flask) -> None:
    with app.app_context():
        document = build_document(app)
    assert document["openapi"].startswith("3.1")
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        if getattr(app.view_functions[rule.endpoint], HIDDEN_ATTR, False):
            continue  # @not_an_operation: answers only an error
        path, _ = openapi_path(rule.rule)
        assert path in document["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = document["paths"][path][method.lower()]
            assert "(undocumented)" not in operation["summary"], (
                f"{method} {rule.rule}: add @doc(...) from api.openapi to its view"
            )
            assert "default" in operation["responses"]
    operation_ids = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


def test_openapi_refs_resolve_and_options_match(app: Flask) -> None:
    with app.app_context():
        document = build_document(app)
    schemas = document["components"]["schemas"]
    assert set(schemas["Options"]["properties"]) == set(OPTION_NAMES)
    assert {"Job", "Batch", "Problem", "Options"} <= set(schemas)
    text = json.dumps(document)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in schemas, name


def test_undocumented_route_still_appears(app: Flask) -> None:
    @app.get("/extra/<thing>")
    def extra(thing: str) -> str:
        return thing

    with app.app_context():
        document = build_document(app)
    assert "get" in document["paths"]["/extra/{thing}"]


def test_error_families_are_problem_documents() -> None:
    for error in (NotFound("x"), CutoutError("y"), PayloadTooLarge("z")):
        body = json.loads(problem_response(error).get_data())
        assert body["status"] == error.status
        assert body["code"] == error.code


def test_sync_wait_is_sliced_below_the_socket_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """/api/remove waits with RedisStore.wait_finished (CUTOUT_SYNC_TIMEOUT, 60 s): one
    BLPOP that long would trip the client's 10 s socket timeout as "Redis unavailable"."""
    from shared.stores import jobs as store_module

    clock = [0.0]
    calls: list[float] = []

    class Client:
        def __init__(self, finish_after: int) -> None:
            self.finish_after = finish_after

        def blpop(self, keys: list[str], timeout: float) -> tuple[str, str] | None:
            calls.append(timeout)
            clock[0] += timeout
            return ("done", "1") if len(calls) == self.finish_after else None

        def rpush(self, *args: object) -> None:
            pass

        def expire(self, *args: object) -> None:
            pass

    monkeypatch.setattr(store_module.time, "monotonic", lambda: clock[0])

    def store(finish_after: int) -> store_module.RedisStore:
        waiting = object.__new__(store_module.RedisStore)
        waiting.r = Client(finish_after)
        processing = JobRecord(id="job_1", status="processing")
        monkeypatch.setattr(waiting, "get_job", lambda job_id: processing)
        return waiting

    assert store(4).wait_finished("job_x", 60.0) is True
    assert len(calls) == 4
    assert all(timeout < 10 for timeout in calls)
    calls.clear()
    assert store(0).wait_finished("job_x", 12.0) is False
    assert all(timeout < 10 for timeout in calls)
    assert sum(calls) == pytest.approx(12.0)
