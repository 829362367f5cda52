"""``POST /v1.0/removebg``'s refusals, word for word: remove.bg's clients read its error
bodies (``{"errors": [{"title", "code", "detail", "source"}]}``) and statuses, so every
malformed request (a value of the wrong kind, an unknown size, a bad roi, two images or
none, an unknown parameter, a body that is not an object ...) as JSON, multipart and
form-urlencoded must keep the exact answer it had. The answers are pinned in
removebg_errors.json (status, Content-Type and body); a real API process with keys, real
Redis and SeaweedFS answer them (none of these requests reaches a worker).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ApiProcess, http, multipart
from tests.integration.test_removebg import KEY, keyed_api  # noqa: F401 (the fixture)
from tests.integration.test_worker import photo_bytes

PINNED = Path(__file__).with_name("removebg_errors.json")
PHOTO = ("photo.jpg", photo_bytes(), "image/jpeg")
B64 = base64.b64encode(PHOTO[1]).decode()
NOT_AN_IMAGE = ("notes.png", b"text\n" * 50, "image/png")

#: name → (kind of body, its fields, its files (multipart only))
CASES: dict[str, tuple[str, Any, dict[str, tuple[str, bytes, str]]]] = {
    # -- the body itself
    "json_list": ("json", [1, 2], {}),
    "json_string": ("json", "image_url", {}),
    "json_null": ("json", None, {}),
    "json_broken": ("raw-json", "{", {}),
    "text_plain": ("text", "image_url=x", {}),
    # -- the image: none, two, of the wrong kind
    "json_no_image": ("json", {"size": "auto"}, {}),
    "json_all_unset": ("json", {"image_url": None, "image_file_b64": "", "size": "auto"}, {}),
    "json_two_images": (
        "json",
        {"image_url": "https://example.com/a.jpg", "image_file_b64": B64},
        {},
    ),
    "json_three_images": (
        "json",
        {"image_url": "https://example.com/a.jpg", "image_file_b64": B64, "image_file": "x"},
        {},
    ),
    "json_image_file_text": ("json", {"image_file": "photo.jpg"}, {}),
    "json_bg_image_file_text": ("json", {"image_file_b64": B64, "bg_image_file": "b.png"}, {}),
    "json_image_url_number": ("json", {"image_url": 5}, {}),
    "json_image_url_ftp": ("json", {"image_url": "ftp://example.com/a.jpg"}, {}),
    "json_b64_number": ("json", {"image_file_b64": 12345}, {}),
    "json_b64_bad": ("json", {"image_file_b64": "!!!!"}, {}),
    "json_b64_empty_padding": ("json", {"image_file_b64": "===="}, {}),
    "json_b64_list": ("json", {"image_file_b64": ["AAAA"]}, {}),
    "json_b64_not_image": (
        "json",
        {"image_file_b64": base64.b64encode(b"hello" * 40).decode()},
        {},
    ),
    "multipart_no_image": ("multipart", {"size": "auto"}, {}),
    "multipart_two_images": (
        "multipart",
        {"image_url": "https://example.com/a.jpg"},
        {"image_file": PHOTO},
    ),
    "multipart_image_file_text": ("multipart", {"image_file": "photo.jpg"}, {}),
    "multipart_bg_image_file_text": (
        "multipart",
        {"bg_image_file": "b.png"},
        {"image_file": PHOTO},
    ),
    "multipart_bg_not_an_image": (
        "multipart",
        {},
        {"image_file": PHOTO, "bg_image_file": NOT_AN_IMAGE},
    ),
    "multipart_bg_file_and_colour": (
        "multipart",
        {"bg_color": "fff"},
        {"image_file": PHOTO, "bg_image_file": PHOTO},
    ),
    "multipart_bg_file_and_url": (
        "multipart",
        {"bg_image_url": "https://example.com/b.jpg"},
        {"image_file": PHOTO, "bg_image_file": PHOTO},
    ),
    "form_no_image": ("form", {"size": "auto"}, {}),
    "form_b64_bad": ("form", {"image_file_b64": "abc*"}, {}),
    "form_image_file_text": ("form", {"image_file": "photo.jpg"}, {}),
    # -- unknown parameters
    "json_unknown": ("json", {"image_file_b64": B64, "zzz": 1, "shadow_type": "3D"}, {}),
    "json_unknown_before_bad_format": (
        "json",
        {"image_file_b64": B64, "format": "gif", "zzz": 1},
        {},
    ),
    "multipart_unknown": ("multipart", {"shadow_type": "3D"}, {"image_file": PHOTO}),
    # -- each parameter's values: of the wrong kind, out of range
    **{
        f"json_{name}_{index}": ("json", {"image_file_b64": B64, name: value}, {})
        for name, values in {
            "size": ["huge", 5, True, ["hd"], {"a": 1}],
            "type": ["building", 3],
            "type_level": ["3", 3, "latest2"],
            "format": ["gif", ["png"], 1],
            "roi": ["1 2 3", "0px 0px 10px 10q", "a b c d", [0, 0, 10, 10], "0% 0% 120% 50%", 4],
            "crop": ["perhaps", 2, [True]],
            "crop_margin": ["-5px", "1px 2px 3px", "50q", "px", [7], "1 2 3 4 5"],
            "scale": ["5%", "200%", "big", 2, "original2"],
            "position": ["left", "101%", "1 2 3", 5],
            "channels": ["rgb", 1],
            "add_shadow": ["sometimes", 2],
            "semitransparency": ["maybe", 7],
            "bg_color": ["notacolour", True, "#12345", "300,0,0", ["fff"]],
            "bg_image_url": [5, "ftp://example.com/b.jpg", "not a url"],
            "model": ["nosuch", 7],
            "score": ["deep", 1],
        }.items()
        for index, value in enumerate(values)
    },
    # -- several wrong: the first in remove.bg's order of checks is named
    "json_size_and_format": ("json", {"image_file_b64": B64, "format": "gif", "size": "huge"}, {}),
    "json_roi_and_scale": ("json", {"image_file_b64": B64, "scale": "5%", "roi": "1 2"}, {}),
    "json_colour_and_url": (
        "json",
        {"image_file_b64": B64, "bg_color": "fff", "bg_image_url": "https://example.com/b.jpg"},
        {},
    ),
    "json_bad_option_no_image": ("json", {"size": "huge"}, {}),
    "json_bad_option_bad_b64": ("json", {"image_file_b64": "!!!!", "size": "huge"}, {}),
    "form_bad_scale": ("form", {"image_file_b64": B64, "scale": "5%"}, {}),
    "multipart_bad_roi": ("multipart", {"roi": "1 2 3 4 5"}, {"image_file": PHOTO}),
    "multipart_bad_crop": ("multipart", {"crop": "perhaps"}, {"image_file": PHOTO}),
}


def send(api: ApiProcess, kind: str, fields: Any, files: dict) -> tuple[int, dict[str, str], bytes]:
    headers = {"X-Api-Key": KEY}
    if kind == "multipart":
        body, headers["Content-Type"] = multipart(fields, files)
    elif kind == "form":
        body = urllib.parse.urlencode(fields).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif kind == "json":
        body, headers["Content-Type"] = json.dumps(fields).encode(), "application/json"
    elif kind == "raw-json":
        body, headers["Content-Type"] = fields.encode(), "application/json"
    else:
        body, headers["Content-Type"] = fields.encode(), "text/plain"
    return http("POST", f"{api.url}/v1.0/removebg", body, headers)


def answer(api: ApiProcess, name: str) -> dict[str, Any]:
    status, headers, raw = send(api, *CASES[name])
    return {"status": status, "content_type": headers["Content-Type"], "body": json.loads(raw)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_malformed_request_keeps_its_exact_answer(keyed_api: ApiProcess, name: str) -> None:  # noqa: F811
    pinned = json.loads(PINNED.read_text())
    assert answer(keyed_api, name) == pinned[name]


def test_every_case_is_pinned() -> None:
    assert sorted(json.loads(PINNED.read_text())) == sorted(CASES)
