"""remove.bg's parameters → our options, its error shape, and the route's answers to wrong
methods, paths, keys and base64 (the Flask app; no servers behind it)."""

from __future__ import annotations

import base64
import json

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api.app import create_app
from api.removebg import InvalidBase64, _decode_b64, error_response, removebg_status
from api.removebg_params import parse_bg_color, removebg_options
from api.removebg_request import RemoveBgRequest
from shared.contract.settings import load_settings
from shared.errors import (
    InvalidImage,
    InvalidOption,
    MethodNotAllowed,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
)


def test_defaults_are_removebgs_preview_png() -> None:
    options = removebg_options({})
    assert options.max_megapixels == 0.25
    assert options.format == "png"
    assert not options.mask_only
    assert options.bg_color is None


@pytest.mark.parametrize(
    ("size", "megapixels"),
    [
        ("preview", 0.25),
        ("small", 0.25),
        ("regular", 0.25),
        ("medium", 1.5),
        ("hd", 4.0),
        ("full", 25.0),
        ("4k", 25.0),
        ("auto", 25.0),
        ("50MP", 50.0),
    ],
)
def test_sizes_cap_megapixels(size: str, megapixels: float) -> None:
    assert removebg_options({"size": size}).max_megapixels == megapixels


def test_names_and_values_map_onto_ours() -> None:
    options = removebg_options(
        {
            "crop": "true",
            "crop_margin": "10px 5%",
            "scale": "50%",
            "position": "center",
            "roi": "0% 0% 50% 100%",
            "add_shadow": True,
            "channels": "rgba",
            "type": "product",
            "type_level": "2",
            "semitransparency": "false",
            "bg_image_url": "https://example.com/b.jpg",
        }
    )
    assert options.crop
    assert options.crop_margin is not None
    assert options.crop_margin.text() == "10px 5% 10px 5%"
    assert options.scale == 0.5
    assert options.position == (0.5, 0.5)
    assert options.roi is not None
    assert options.roi.text() == "0% 0% 50% 100%"
    assert options.shadow
    assert options.bg_image_url == "https://example.com/b.jpg"
    # format auto with an opaque background image: JPG
    assert options.format == "jpeg"


def test_format_auto_and_jpg() -> None:
    assert removebg_options({"bg_color": "fff"}).format == "jpeg"
    assert removebg_options({"bg_color": "81d4fa77"}).format == "png"  # translucent
    assert removebg_options({"channels": "alpha"}).mask_only
    assert removebg_options({"channels": "alpha", "bg_color": "fff"}).format == "png"
    jpg = removebg_options({"format": "jpg"})
    assert jpg.format == "jpeg"
    assert jpg.bg_color == (255, 255, 255, 255)  # white where it would be transparent
    assert removebg_options({"format": "zip"}).format == "zip"
    assert removebg_options({"format": "webp"}).format == "webp"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fff", "#ffffffff"),
        ("81d4fa", "#81d4faff"),
        ("#81d4fa77", "#81d4fa77"),
        ("f0a8", "#ff00aa88"),
        ("green", "#008000ff"),
        ("10,20,30", "10,20,30"),
    ],
)
def test_bg_colours_as_removebg_writes_them(value: str, expected: str) -> None:
    assert parse_bg_color(value) == expected


def test_unset_values_are_ignored_as_the_npm_client_sends_them() -> None:
    options = removebg_options({"scale": None, "position": "", "roi": "undefined", "crop": False})
    assert options.scale is None
    assert options.position is None
    assert options.roi is None


@pytest.mark.parametrize(
    ("params", "option"),
    [
        ({"size": "huge"}, "size"),
        ({"type": "building"}, "type"),
        ({"type_level": "3"}, "type_level"),
        ({"channels": "rgb"}, "channels"),
        ({"format": "gif"}, "format"),
        ({"semitransparency": "maybe"}, "semitransparency"),
        ({"bg_color": "notacolour"}, "bg_color"),
        ({"shadow_type": "3D"}, "shadow_type"),
        ({"bg_color": "fff", "bg_image_url": "https://example.com/b.jpg"}, "bg_image_url"),
    ],
)
def test_bad_values_name_the_parameter(params: dict[str, object], option: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        removebg_options(params)
    assert caught.value.extra["option"] == option


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidOption("x", option="size"), 400),
        (InvalidImage("x"), 400),
        (PayloadTooLarge("x"), 400),
        (Unauthorized("x"), 403),
        (RateLimited("x"), 429),
        (Unavailable("x"), 503),
        (MethodNotAllowed("x"), 405),
    ],
)
def test_statuses_are_removebgs(error: Exception, status: int) -> None:
    assert removebg_status(error) == status  # type: ignore[arg-type]


def test_error_body_is_removebgs_errors_array() -> None:
    error = RateLimited("slow down")
    error.headers = {"Retry-After": "3", "WWW-Authenticate": "Bearer"}  # type: ignore[attr-defined]
    response = error_response(error)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert "WWW-Authenticate" not in response.headers
    assert json.loads(response.get_data()) == {
        "errors": [{"title": "slow down", "code": "rate_limited", "detail": "Too many requests"}]
    }


def test_an_uploaded_background_makes_the_result_opaque() -> None:
    # bg_image_file was added after the options were checked, so format auto and jpg
    # refused it ("jpeg has no alpha channel: it needs bg_color or a background image")
    key = "inputs/shop/job_1/background"
    auto = removebg_options({}, bg_upload_key=key)
    assert (auto.format, auto.bg_upload_key, auto.bg_color) == ("jpeg", key, None)
    assert removebg_options({"format": "jpg"}, bg_upload_key=key).bg_color is None
    assert removebg_options({"format": "png"}, bg_upload_key=key).format == "png"
    for other in ({"bg_color": "fff"}, {"bg_image_url": "https://example.com/b.jpg"}):
        with pytest.raises(InvalidOption) as caught:
            removebg_options(other, bg_upload_key=key)
        assert caught.value.extra["option"] == "bg_image_file"


# -- the route's answers outside its parameters (Flask app, nothing behind it) -----------

KEY = "a-key-that-is-long-enough"


@pytest.fixture
def client() -> FlaskClient:
    settings = load_settings(
        {},
        redis_url="redis://127.0.0.1:1/0",
        s3_endpoint_url="http://127.0.0.1:1",
        api_keys={KEY: "acme"},
    )
    return create_app(settings).test_client()


def removebg_error(response: TestResponse) -> dict[str, object]:
    assert response.mimetype == "application/json", response.get_data()[:300]
    body = json.loads(response.get_data())
    assert set(body) == {"errors"}
    error: dict[str, object] = body["errors"][0]
    assert all(error[member] for member in ("title", "code", "detail"))
    return error


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/v1.0/removebg", "/v1.0/removebg/"])
@pytest.mark.parametrize("key", [KEY, None])
def test_other_methods_are_removebgs_405_with_allow(
    client: FlaskClient, method: str, path: str, key: str | None
) -> None:
    # they were our problem+json 405 (with a key), 401 (without) or 404 (trailing slash)
    headers = {"X-Api-Key": key} if key else {}
    response = client.open(path, method=method, headers=headers)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    error = removebg_error(response)
    assert error["code"] == "method_not_allowed"
    assert method in str(error["title"])
    head = client.head(path, headers=headers)
    assert head.status_code == 405
    assert head.headers["Allow"]


@pytest.mark.parametrize("key", [None, "wrong-key-wrong-key-wrong"])
@pytest.mark.parametrize("path", ["/v1.0/removebg", "/v1.0/removebg/"])
def test_a_post_without_a_valid_key_is_removebgs_403(
    client: FlaskClient, path: str, key: str | None
) -> None:
    headers = {"X-Api-Key": key} if key else {}
    response = client.post(path, json={"image_file_b64": "aGk="}, headers=headers)
    assert response.status_code == 403
    error = removebg_error(response)
    assert error["code"] == "unauthorized"
    assert "WWW-Authenticate" not in response.headers
    if key is None:  # told the header remove.bg's clients send
        assert "X-Api-Key" in str(error["title"])


def test_the_trailing_slash_route_is_the_same_route(client: FlaskClient) -> None:
    response = client.post("/v1.0/removebg/", json={"size": "auto"}, headers={"X-Api-Key": KEY})
    assert response.status_code == 400
    error = removebg_error(response)
    assert error["code"] == "invalid_request"
    assert "exactly one of image_file" in str(error["title"])


def test_an_unknown_v1_0_path_is_a_404_in_removebgs_shape(client: FlaskClient) -> None:
    for path in ("/v1.0/account", "/v1.0/"):
        response = client.get(path, headers={"X-Api-Key": KEY})
        assert response.status_code == 404
        assert removebg_error(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("!!!!", "'!' at position 0"),  # decoded to 0 bytes before: "the input is empty"
        ("@@@@====", "'@' at position 0"),
        ("====", "it is empty"),
        ("iVBORw0KGgo*AAAA", "'*' at position 11"),
        ("iVBORw0KG", "9 characters"),
        ("data:image/png;base64,%%%", "'%' at position 0"),
    ],
)
def test_invalid_base64_says_so(client: FlaskClient, value: str, says: str) -> None:
    response = client.post(
        "/v1.0/removebg", json={"image_file_b64": value}, headers={"X-Api-Key": KEY}
    )
    assert response.status_code == 400
    error = removebg_error(response)
    assert error["code"] == "invalid_base64"
    assert error["source"] == {"parameter": "image_file_b64"}
    assert str(error["title"]).startswith("image_file_b64 is not valid base64: ")
    assert says in str(error["title"])
    assert "empty (0 bytes)" not in str(error["title"])


def test_base64_line_breaks_url_safe_alphabet_and_no_padding_decode() -> None:
    data = bytes(range(256)) * 3
    standard = base64.b64encode(data).decode()
    assert _decode_b64(standard, 10_000) == data
    assert _decode_b64(base64.encodebytes(data).decode(), 10_000) == data  # 76-char lines
    assert _decode_b64(base64.urlsafe_b64encode(data).decode().rstrip("="), 10_000) == data
    assert _decode_b64(f"data:image/png;base64,{standard}", 10_000) == data
    with pytest.raises(InvalidBase64):
        _decode_b64("", 10_000)


# -- the request as a model, and its schema in /openapi.json --------------------------------

#: remove.bg's parameters we accept (docs/removebg.md), and our two extensions
PARAMETERS = {
    "size", "type", "type_level", "format", "roi", "crop", "crop_margin", "scale", "position",
    "channels", "add_shadow", "semitransparency", "bg_color", "bg_image_url", "image_url",
    "image_file", "image_file_b64", "bg_image_file", "model", "score",
}  # fmt: skip


def test_the_request_schemas_come_from_the_model_and_type_every_parameter(
    client: FlaskClient,
) -> None:
    # they were {"type": "object"}: no parameter documented
    document = client.get("/openapi.json").get_json()
    body = document["paths"]["/v1.0/removebg"]["post"]["requestBody"]["content"]
    schemas = document["components"]["schemas"]
    refs = {ct: media["schema"]["$ref"].rsplit("/", 1)[1] for ct, media in body.items()}
    assert refs == {
        "multipart/form-data": "RemoveBgMultipart",
        "application/json": "RemoveBgJson",
        "application/x-www-form-urlencoded": "RemoveBgForm",
    }
    multipart = schemas["RemoveBgMultipart"]["properties"]
    assert set(multipart) == PARAMETERS
    for name in ("RemoveBgJson", "RemoveBgForm"):  # no files outside multipart
        assert set(schemas[name]["properties"]) == PARAMETERS - {"image_file", "bg_image_file"}
    for name, schema in multipart.items():
        assert "type" in schema or "anyOf" in schema, name
    assert multipart["image_file"]["anyOf"][0] == {"type": "string", "contentEncoding": "binary"}
    assert multipart["size"]["enum"][:2] == ["preview", "small"]
    assert multipart["add_shadow"]["type"] == "boolean"
    assert multipart["roi"] == schemas["Options"]["properties"]["roi"] | {"default": None}


def test_the_request_reads_into_typed_attributes() -> None:
    body = RemoveBgRequest.model_validate(
        {
            "image_file_b64": "AAAA",
            "size": " HD ",
            "type": "Person",
            "roi": "0 0 50% 50%",
            "crop": "true",
            "scale": "50%",
            "position": "original",
            "add_shadow": "1",
            "bg_color": "81d4fa",
            "model": "u2netp",
            "image_url": "undefined",  # unset, as the npm client sends it
        },
        context={"bg_upload_key": "inputs/acme/job_1/background"},
    )
    assert (body.source, body.image_file_b64, body.image_url) == ("image_file_b64", "AAAA", None)
    assert (body.size, body.type, body.crop, body.add_shadow) == ("hd", "person", True, True)
    assert body.roi == body.options.roi
    assert body.roi is not None
    assert body.roi.text() == "0px 0px 50% 50%"
    assert (body.scale, body.position, body.model) == (0.5, None, "u2netp")
    assert body.bg_color is not None
    assert body.bg_color.text() == "#81d4faff"
    assert (body.options.max_megapixels, body.options.shadow) == (4.0, True)
    # no file: the key is not used, and the opaque colour makes format auto a JPG
    assert (body.options.bg_upload_key, body.options.format) == (None, "jpeg")
    # an uploaded background is stored under the key
    upload = RemoveBgRequest.model_validate(
        {"image_file": b"photo", "bg_image_file": b"", "format": "png"},
        context={"bg_upload_key": "inputs/acme/job_1/background"},
    )
    assert (upload.source, upload.image_file, upload.bg_image_file) == ("image_file", b"photo", b"")
    assert upload.options.bg_upload_key == "inputs/acme/job_1/background"
    assert upload.options.format == "png"
