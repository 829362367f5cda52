"""``POST /v1.0/removebg`` and the catalogue outputs end to end: a real `cutout api` with
API keys, a real `cutout worker`, real Redis and SeaweedFS, a local HTTP server for
``image_url`` / ``bg_image_url`` (127.0.0.1 is allowed by the session's settings).

The requests are written as remove.bg's documentation shows them (curl's multipart with
``X-Api-Key``, JSON with ``image_file_b64``, form fields); the npm client's own test is
tests/integration/test_removebg_client.py.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import ApiProcess, http, multipart, running_api, wait_for
from tests.integration.test_worker import photo_bytes

KEY = "shop-removebg-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_api(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """A real API process that requires keys (tenant ``shop``)."""
    env = dict(service_env, CUTOUT_API_KEYS=f"shop:{KEY}")
    with running_api(env, tmp_path_factory.mktemp("removebg-api") / "api.log") as api:
        yield api


def backdrop_bytes(size: tuple[int, int] = (200, 100)) -> bytes:
    """Green on the top half, blue on the bottom half (PNG)."""
    image = Image.new("RGB", size, (0, 200, 0))
    image.paste((0, 0, 250), (0, size[1] // 2, size[0], size[1]))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def files() -> Iterator[Callable[[str], str]]:
    """A local HTTP server of /photo.jpg and /backdrop.png; returns name → URL."""
    content = {
        "/photo.jpg": photo_bytes(),
        "/backdrop.png": backdrop_bytes(),
        "/notes.txt": b"not an image\n" * 20,
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = content.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield lambda name: f"http://127.0.0.1:{server.server_port}/{name}"
    server.shutdown()


def removebg(api: ApiProcess, fields: dict[str, str], files: dict | None = None, **headers: str):  # type: ignore[no-untyped-def]
    body, ctype = multipart(fields, files or {})
    return http(
        "POST",
        f"{api.url}/v1.0/removebg",
        body,
        {"Content-Type": ctype, "X-Api-Key": KEY, **headers},
    )


def photo_file() -> dict[str, tuple[str, bytes, str]]:
    return {"image_file": ("photo.jpg", photo_bytes(), "image/jpeg")}


def test_curl_example_answers_a_png_with_removebgs_headers(keyed_api, worker) -> None:
    # remove.bg's sample: -H 'X-API-Key: …' -F 'image_file=@…' -F 'size=auto'
    status, headers, raw = removebg(keyed_api, {"size": "auto", "model": "u2netp"}, photo_file())
    assert status == 200, raw[:500]
    assert headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(raw))
    assert image.mode == "RGBA"
    assert image.size == (480, 360)
    assert (headers["X-Width"], headers["X-Height"]) == ("480", "360")
    assert headers["X-Credits-Charged"] == "0"
    assert "X-Type" not in headers  # type=auto: we do not classify
    # the red disc (radius 120 around 240,180) is the foreground
    top, left = int(headers["X-Foreground-Top"]), int(headers["X-Foreground-Left"])
    width, height = int(headers["X-Foreground-Width"]), int(headers["X-Foreground-Height"])
    assert abs(left - 120) <= 6
    assert abs(top - 60) <= 6
    assert abs(width - 240) <= 12
    assert abs(height - 240) <= 12
    alpha = np.asarray(image)[..., 3]
    assert alpha[180, 240] > 200
    assert alpha[5, 5] < 30
    assert headers["X-RateLimit-Limit"]


def test_default_size_is_removebgs_preview_quarter_megapixel(keyed_api, worker) -> None:
    big = photo_bytes((1600, 1200))
    status, headers, raw = removebg(
        keyed_api, {"model": "u2netp"}, {"image_file": ("p.jpg", big, "image/jpeg")}
    )
    assert status == 200, raw[:500]
    width, height = int(headers["X-Width"]), int(headers["X-Height"])
    assert width * height <= 250_000
    assert abs(width / height - 4 / 3) < 0.01
    # the job reports the subject in the original's pixels all the same
    job_id = headers["Cutout-Job-Id"]
    _, _, job_raw = http("GET", f"{keyed_api.url}/v1/jobs/{job_id}", headers={"X-Api-Key": KEY})
    subject = json.loads(job_raw)["result"]["subject"]
    assert abs(subject["left"] - 400) <= 16
    assert abs(subject["width"] - 800) <= 32
    assert 0.3 < subject["share"] < 0.4


def test_json_base64_with_accept_json(keyed_api, worker) -> None:
    body = json.dumps(
        {
            "image_file_b64": base64.b64encode(photo_bytes()).decode(),
            "size": "regular",
            "bg_color": "fff",
            "crop": True,
            "model": "u2netp",
        }
    ).encode()
    status, headers, raw = http(
        "POST",
        f"{keyed_api.url}/v1.0/removebg",
        body,
        {"Content-Type": "application/json", "Accept": "application/json", "X-Api-Key": KEY},
    )
    assert status == 200, raw[:500]
    assert headers["Content-Type"] == "application/json"
    data = json.loads(raw)["data"]
    # format auto with an opaque colour: JPG (remove.bg's rule: PNG only with transparency)
    image = Image.open(io.BytesIO(base64.b64decode(data["result_b64"])))
    assert image.format == "JPEG"
    assert image.size == (int(headers["X-Width"]), int(headers["X-Height"]))
    # cropped to the disc: the foreground fills the result
    assert data["foreground_left"] <= 2
    assert data["foreground_top"] <= 2
    assert abs(data["foreground_width"] - image.width) <= 2
    assert str(data["foreground_top"]) == headers["X-Foreground-Top"]


def test_image_url_with_background_image_url_as_jpg(keyed_api, worker, files) -> None:
    status, headers, raw = removebg(
        keyed_api,
        {
            "image_url": files("photo.jpg"),
            "bg_image_url": files("backdrop.png"),
            "format": "jpg",
            "size": "full",
            "model": "u2netp",
        },
    )
    assert status == 200, raw[:500]
    assert headers["Content-Type"] == "image/jpeg"
    pixels = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).astype(int)
    # the 2:1 backdrop covers 480x360: scaled to 720x360, centre-cropped; green above blue
    assert pixels[5, 5, 1] > 150
    assert pixels[5, 5, 0] < 60
    assert pixels[355, 5, 2] > 200
    assert pixels[180, 240, 0] > 150  # the red disc on top


def test_bg_image_file_and_zip(keyed_api, worker) -> None:
    status, headers, raw = removebg(
        keyed_api,
        {"format": "zip", "model": "u2netp", "add_shadow": "true"},
        {
            **photo_file(),
            "bg_image_file": ("backdrop.png", backdrop_bytes((480, 360)), "image/png"),
        },
    )
    assert status == 200, raw[:500]
    assert headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
        color = np.asarray(Image.open(io.BytesIO(archive.read("color.jpg")))).astype(int)
        alpha = np.asarray(Image.open(io.BytesIO(archive.read("alpha.png"))))
    assert color.shape == (360, 480, 3)
    assert (alpha == 255).all()  # an opaque background image
    assert color[5, 5, 1] > 150  # green from the uploaded backdrop


def test_bg_image_file_with_the_default_format_is_a_jpg(keyed_api, worker) -> None:
    # remove.bg's curl example: image_file and bg_image_file, nothing else. format auto
    # must give a JPG (opaque); this was refused as "jpeg needs a background image"
    backdrop = ("backdrop.png", backdrop_bytes((480, 360)), "image/png")
    status, headers, raw = removebg(
        keyed_api, {"model": "u2netp"}, {**photo_file(), "bg_image_file": backdrop}
    )
    assert status == 200, raw[:500]
    assert headers["Content-Type"] == "image/jpeg"
    pixels = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).astype(int)
    assert pixels[5, 5, 1] > 150
    assert pixels[5, 5, 0] < 60
    # a background that is no image is named as such, whatever the format
    status, _, raw = removebg(
        keyed_api,
        {},
        {**photo_file(), "bg_image_file": ("notes.png", b"text\n" * 50, "image/png")},
    )
    assert status == 400, raw[:500]
    error = json.loads(raw)["errors"][0]
    assert error["code"] == "unsupported_format"
    assert error["source"] == {"parameter": "bg_image_file"}  # not the good image_file


@pytest.mark.parametrize(
    ("fields", "code", "parameter"),
    [
        ({"size": "gigantic"}, "invalid_option", "size"),
        ({"format": "gif"}, "invalid_option", "format"),
        ({"channels": "rgb"}, "invalid_option", "channels"),
        ({"scale": "5%"}, "invalid_option", "scale"),
        ({"crop_margin": "1px 2px 3px"}, "invalid_option", "crop_margin"),
        ({"bg_color": "notacolour"}, "invalid_option", "bg_color"),
        ({"shadow_type": "3D"}, "invalid_option", "shadow_type"),
    ],
)
def test_bad_parameters_are_400_in_removebgs_shape(keyed_api, fields, code, parameter) -> None:
    status, headers, raw = removebg(keyed_api, fields, photo_file())
    assert status == 400, raw[:500]
    assert headers["Content-Type"] == "application/json"
    error = json.loads(raw)["errors"][0]
    assert error["code"] == code
    assert error["source"] == {"parameter": parameter}
    assert parameter in error["title"]
    assert error["detail"]


def test_request_errors_keep_removebgs_statuses(keyed_api) -> None:
    # no source, two sources, a non-image, no key, a wrong key
    status, _, raw = removebg(keyed_api, {"size": "auto"})
    assert status == 400
    assert json.loads(raw)["errors"][0]["code"] == "invalid_request"
    status, _, raw = removebg(keyed_api, {"image_url": "http://127.0.0.1:1/x"}, photo_file())
    assert status == 400
    status, _, raw = removebg(
        keyed_api, {}, {"image_file": ("notes.jpg", b"text\n" * 50, "image/jpeg")}
    )
    assert status == 400
    assert json.loads(raw)["errors"][0]["code"] == "unsupported_format"
    body, ctype = multipart({}, photo_file())
    for headers in ({}, {"X-Api-Key": "wrong-key"}):
        status, _, raw = http(
            "POST", f"{keyed_api.url}/v1.0/removebg", body, {"Content-Type": ctype, **headers}
        )
        assert status == 403
        assert json.loads(raw)["errors"][0]["code"] == "unauthorized"


def test_wrong_methods_the_trailing_slash_and_bad_base64_answer_removebgs_shape(
    keyed_api, worker
) -> None:
    # GET/PUT/DELETE/PATCH were our problem+json 405 (401 without a key, 404 with a
    # trailing slash); a keyless POST to /v1.0/removebg/ our 401; base64 that is not
    # base64 said "the input is empty (0 bytes)"
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        for path in ("/v1.0/removebg", "/v1.0/removebg/"):
            for key in ({"X-Api-Key": KEY}, {}):
                status, headers, raw = http(method, keyed_api.url + path, None, key)
                assert status == 405, (method, path, raw[:300])
                assert headers["Content-Type"] == "application/json"
                assert "POST" in headers["Allow"]
                assert json.loads(raw)["errors"][0]["code"] == "method_not_allowed"
    body, ctype = multipart({"model": "u2netp"}, photo_file())
    status, headers, raw = http(
        "POST", f"{keyed_api.url}/v1.0/removebg/", body, {"Content-Type": ctype}
    )
    assert status == 403
    assert headers["Content-Type"] == "application/json"
    assert json.loads(raw)["errors"][0]["code"] == "unauthorized"
    for value in ("!!!!", "not base64 at all?", "===="):
        status, _, raw = http(
            "POST",
            f"{keyed_api.url}/v1.0/removebg",
            json.dumps({"image_file_b64": value}).encode(),
            {"Content-Type": "application/json", "X-Api-Key": KEY},
        )
        assert status == 400
        error = json.loads(raw)["errors"][0]
        assert error["code"] == "invalid_base64"
        assert error["title"].startswith("image_file_b64 is not valid base64")
        assert error["source"] == {"parameter": "image_file_b64"}
    # with a key, the trailing slash is the same route: the cutout
    status, headers, raw = http(
        "POST", f"{keyed_api.url}/v1.0/removebg/", body, {"Content-Type": ctype, "X-Api-Key": KEY}
    )
    assert status == 200, raw[:500]
    assert Image.open(io.BytesIO(raw)).mode == "RGBA"


def test_catalogue_options_through_jobs_and_api_remove(keyed_api, worker, files) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    body = json.dumps(
        {
            "image_url": files("photo.jpg"),
            "options": {
                "model": "u2netp",
                "scale": "50%",
                "position": "0% 0%",
                "shadow": True,
                "bg_image_url": files("backdrop.png"),
                "format": "jpeg",
            },
        }
    ).encode()
    status, _, raw = http(
        "POST", f"{keyed_api.url}/v1/jobs", body, {"Content-Type": "application/json", **auth}
    )
    assert status == 202, raw
    job_id = json.loads(raw)["id"]
    job = poll_keyed(keyed_api, job_id)
    assert job["status"] == "succeeded", job
    subject = job["result"]["subject"]
    assert abs(subject["left"] - 120) <= 6
    assert 0.3 < subject["share"] < 0.4
    # scaled to half the canvas' height (180 px) at the top left
    foreground = job["result"]["foreground"]
    assert foreground["left"] <= 2
    assert foreground["top"] <= 2
    assert abs(foreground["height"] - 180) <= 8

    body, ctype = multipart(
        {"model": "u2netp", "format": "zip"}, {"file": ("p.jpg", photo_bytes(), "image/jpeg")}
    )
    status, headers, raw = http(
        "POST", f"{keyed_api.url}/api/remove", body, {"Content-Type": ctype, **auth}
    )
    assert status == 200, raw[:300]
    assert headers["Content-Type"] == "application/zip"
    assert abs(int(headers["Cutout-Subject-Left"]) - 120) <= 6
    assert 0.3 < float(headers["Cutout-Subject-Share"]) < 0.4


def test_another_tenants_background_key_reads_as_missing(keyed_api) -> None:
    body = json.dumps(
        {"image_url": "http://127.0.0.1:1/x", "options": {"bg_upload_key": "uploads/other/upl_1"}}
    ).encode()
    status, _, raw = http(
        "POST",
        f"{keyed_api.url}/v1/jobs",
        body,
        {"Content-Type": "application/json", "X-Api-Key": KEY},
    )
    assert status == 422
    assert json.loads(raw)["code"] == "upload_not_found"


def poll_keyed(api: ApiProcess, job_id: str) -> dict:
    def finished() -> dict | None:
        status, _, raw = http("GET", f"{api.url}/v1/jobs/{job_id}", headers={"X-Api-Key": KEY})
        assert status == 200, raw
        job = json.loads(raw)
        return job if job["status"] in ("succeeded", "failed", "canceled") else None

    return wait_for(finished, 180)  # type: ignore[no-any-return]


def test_catalogue_options_through_a_batch(keyed_api, worker, files) -> None:
    headers = {"Content-Type": "application/json", "X-Api-Key": KEY}
    body = json.dumps(
        {
            "options": {"model": "u2netp", "shadow": True},
            "items": [
                {
                    "image_url": files("photo.jpg"),
                    "options": {"bg_image_url": files("backdrop.png"), "format": "zip"},
                },
                {"image_url": files("photo.jpg"), "options": {"scale": "100%", "crop": True}},
            ],
        }
    ).encode()
    status, _, raw = http("POST", f"{keyed_api.url}/v1/batches", body, headers)
    assert status == 202, raw
    batch_id = json.loads(raw)["id"]
    wait_for(
        lambda: (
            json.loads(http("GET", f"{keyed_api.url}/v1/batches/{batch_id}", headers=headers)[2])[
                "status"
            ]
            == "completed"
        ),
        180,
    )
    _, _, raw = http("GET", f"{keyed_api.url}/v1/batches/{batch_id}/jobs", headers=headers)
    jobs = sorted(json.loads(raw)["items"], key=lambda job: job["item_index"])
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
    assert jobs[0]["result"]["content_type"] == "application/zip"
    assert jobs[0]["options"]["shadow"] is True
    for job in jobs:
        assert abs(job["result"]["subject"]["left"] - 120) <= 6
    # cropped and scaled to fill the crop: the foreground is the whole result
    second = jobs[1]["result"]
    assert second["foreground"]["width"] >= second["width"] - 2
    status, _, archive = http(
        "GET", f"{keyed_api.url}/v1/batches/{batch_id}/results.zip", headers=headers
    )
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(archive)) as results:
        names = results.namelist()
    assert any(name.endswith(".zip") for name in names), names
    assert any(name.endswith(".png") for name in names), names


def test_a_background_that_is_not_an_image_fails_the_job_saying_so(
    keyed_api, worker, files
) -> None:
    status, _, raw = removebg(
        keyed_api, {"bg_image_url": files("notes.txt"), "model": "u2netp"}, photo_file()
    )
    assert status == 400, raw[:300]
    error = json.loads(raw)["errors"][0]
    assert error["code"] == "unsupported_format"
    assert error["title"].startswith("the background image:")
