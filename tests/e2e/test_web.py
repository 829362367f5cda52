"""The web page at GET / in Chromium, against a real API, worker, Redis and S3.

Each test drives the page the way a person does (labels, buttons, the file chooser) and
checks what it produced against the API itself: the downloaded file's pixels equal the
result of a job created over HTTP with the same image and options.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import EVAL_DIR
from tests.e2e.conftest import API_KEY, PageSession
from tests.integration.conftest import ApiProcess, http, multipart

DONE = '#result-stage[data-status="succeeded"], #result-stage[data-status="failed"]'
# pixels of the page's download against the API's own result for the same input and
# options: the same engine on the same bytes, so at most one 8-bit level apart (float
# summation order is the only freedom)
ALPHA_TOLERANCE = 1


# -- helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small photos: ../shared/eval/photos when present, else generated ones."""
    names = ("girl-1.jpg", "car-1.jpg", "girl-2.jpg")
    real = [EVAL_DIR / "photos" / name for name in names]
    if all(path.is_file() for path in real):
        return real
    folder = tmp_path_factory.mktemp("photos")
    made = []
    for index, name in enumerate(names):
        image = Image.new("RGB", (480, 360), (200 - 30 * index, 210, 225))
        pixels = np.array(image)
        yy, xx = np.mgrid[:360, :480]
        subject = (xx - 240) ** 2 / 120**2 + (yy - 190) ** 2 / 140**2 < 1
        pixels[subject] = (180, 60 + 40 * index, 40)
        path = folder / name
        Image.fromarray(pixels).save(path, quality=92)
        made.append(path)
    return made


def api_job(api: ApiProcess, data: bytes, name: str, options: dict[str, Any], headers=None):  # type: ignore[no-untyped-def]
    """A job over HTTP (multipart) with ``options``; returns the finished job object."""
    body, ctype = multipart({"options": json.dumps(options)}, {"image": (name, data, "image/jpeg")})
    status, _, answer = http(
        "POST", api.url + "/v1/jobs", body, {"Content-Type": ctype, **(headers or {})}
    )
    assert status == 202, answer
    job = json.loads(answer)
    deadline = time.monotonic() + 180
    while job["status"] in ("queued", "processing") and time.monotonic() < deadline:
        time.sleep(0.2)
        status, _, answer = http("GET", f"{api.url}/v1/jobs/{job['id']}", headers=headers)
        job = json.loads(answer)
    assert job["status"] == "succeeded", job
    return job


def job_result(api: ApiProcess, job_id: str, headers=None) -> bytes:  # type: ignore[no-untyped-def]
    status, _, data = http("GET", f"{api.url}/v1/jobs/{job_id}/result", headers=headers)
    assert status == 200, data[:500]
    return data


def rgba(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"))


def assert_same_pixels(
    got: bytes, want: bytes, shots: Path, name: str, channels: slice = slice(3, 4)
) -> None:
    """``got`` and ``want`` agree within ALPHA_TOLERANCE on ``channels`` (default alpha)."""
    a, b = rgba(got), rgba(want)
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = np.abs(a[..., channels].astype(int) - b[..., channels].astype(int)).max()
    if diff > ALPHA_TOLERANCE:
        (shots / f"{name}-page.png").write_bytes(got)
        (shots / f"{name}-api.png").write_bytes(want)
    assert diff <= ALPHA_TOLERANCE, f"max difference {diff}; images saved in {shots}"


def wait_result(session: PageSession) -> str:
    """Wait for the selected image's result; returns its job id (fails with the message)."""
    page = session.page
    page.wait_for_selector(DONE, state="attached")
    stage = page.locator("#result-stage")
    if stage.get_attribute("data-status") != "succeeded":
        session.shot("unexpected-failure")
        pytest.fail(f"the page shows a failure: {page.locator('#result-error').inner_text()}")
    page.wait_for_function(
        "() => { const i = document.getElementById('result-img');"
        " return !i.hidden && i.complete && i.naturalWidth > 0; }"
    )
    return stage.get_attribute("data-job-id") or ""


def download(session: PageSession, tmp_path: Path) -> tuple[str, bytes]:
    page = session.page
    link = page.locator("#download")
    assert link.get_attribute("aria-disabled") is None
    with page.expect_download() as info:
        link.click()
    item = info.value
    target = tmp_path / item.suggested_filename
    item.save_as(target)
    return item.suggested_filename, target.read_bytes()


def until(page: Any, predicate: Any, what: str, seconds: float = 120) -> None:
    """Let the page run until ``predicate()`` holds; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        page.wait_for_timeout(50)


def no_console_errors(session: PageSession, allowed: tuple[str, ...] = ()) -> None:
    errors = [e for e in session.console_errors if not any(a in e for a in allowed)]
    assert not errors, errors


# -- tests ------------------------------------------------------------------------------


def test_photo_to_cutout_and_download_equals_the_api(
    api_server: ApiProcess, open_page, photos: list[Path], shots: Path, tmp_path: Path
) -> None:
    session = open_page(api_server.url)
    page = session.page
    assert page.title().startswith("Cutout")
    # auth is off on loopback: no key field
    assert page.locator("#key-form").is_hidden()
    session.shot("1-empty")

    page.get_by_label("Model").select_option("u2net")
    photo = photos[0]
    page.locator("#file-input").set_input_files(str(photo))
    job_id = wait_result(session)
    session.shot("2-result")

    name, data = download(session, tmp_path)
    assert name == f"{photo.stem}-cutout.png"
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGBA"
        assert image.size == Image.open(photo).size
    # the same bytes as the page's own job, and the pixels of a job made over HTTP
    assert data == job_result(api_server, job_id)
    reference = api_job(api_server, photo.read_bytes(), photo.name, {"model": "u2net"})
    assert_same_pixels(data, job_result(api_server, reference["id"]), shots, "u2net")

    # the image went to storage once, straight from the browser (a CORS preflighted PUT)
    assert len(session.calls("POST", "/v1/uploads")) == 1
    puts = session.calls("PUT", "/cutout-test/uploads/")
    assert len(puts) == 1, [r.url for r in session.requests]
    assert puts[0].response().status == 200
    assert not session.failed, session.failed
    no_console_errors(session)


def test_u2netp_on_a_background_colour(
    api_server: ApiProcess, open_page, photos: list[Path], shots: Path, tmp_path: Path
) -> None:
    session = open_page(api_server.url)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    page.get_by_label("Transparent").uncheck()
    page.get_by_label("Background colour").fill("#3366ff")
    page.get_by_label("Format").select_option("webp")
    photo = photos[1]
    page.locator("#file-input").set_input_files(str(photo))
    wait_result(session)
    session.shot("result")

    name, data = download(session, tmp_path)
    assert name == f"{photo.stem}-cutout.webp"
    options = {"model": "u2netp", "bg_color": "#3366ff", "format": "webp"}
    reference = api_job(api_server, photo.read_bytes(), photo.name, options)
    want = job_result(api_server, reference["id"])
    got = rgba(data)
    assert (got[..., 3] == 255).all(), "a background colour leaves no transparency"
    assert_same_pixels(data, want, shots, "u2netp-colour", channels=slice(0, 4))
    no_console_errors(session)


def test_process_again_reuses_the_upload(
    api_server: ApiProcess, open_page, photos: list[Path], shots: Path
) -> None:
    session = open_page(api_server.url)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files(str(photos[2]))
    first = wait_result(session)
    uploads_before = len(session.calls("POST", "/v1/uploads"))
    puts_before = len(session.calls("PUT", "/uploads/"))
    assert uploads_before == 1
    assert puts_before == 1

    # hold the new job's first status poll, so that the queued state can be seen
    held: list[Any] = []
    holding = [True]

    def hold(route: Any) -> None:
        if holding[0]:
            held.append(route)
        else:
            route.continue_()

    page.route("**/v1/jobs/job_*", hold)
    session.requests.clear()
    page.get_by_label("Model").select_option("u2net")
    page.locator("summary", has_text="Advanced options").click()
    page.get_by_label("Crop to the subject").check()
    page.get_by_label("Margin (px)").fill("12")
    page.get_by_role("button", name="Process again").click()
    page.wait_for_function("() => document.getElementById('result-stage').dataset.jobId !== ''")
    until(page, lambda: held, "the new job's first status request")
    assert page.locator("#result-progress").is_visible()
    assert page.locator("#result-stage").get_attribute("aria-busy") == "true"
    session.shot("queued")
    holding[0] = False
    for route in held:
        route.continue_()
    second = wait_result(session)
    session.shot("result")

    assert second != first
    assert not session.calls("POST", "/v1/uploads"), "process again asked for an upload URL"
    assert not session.calls("PUT", "/uploads/"), "process again uploaded the image again"
    posts = session.calls("POST", "/v1/jobs")
    assert len(posts) == 1
    body = json.loads(posts[0].post_data or "{}")
    assert body["upload_key"].startswith("uploads/public/")
    assert body["options"]["model"] == "u2net"
    assert body["options"]["crop"] is True
    assert body["options"]["margin"] == 12
    _, _, answer = http("GET", f"{api_server.url}/v1/jobs/{second}")
    job = json.loads(answer)
    assert job["options"]["model"] == "u2net"
    assert job["options"]["crop"] is True
    no_console_errors(session)


def test_a_text_file_shows_the_problem_detail(
    api_server: ApiProcess, open_page, tmp_path: Path
) -> None:
    text = b"name,price\nchair,42\n"
    body, ctype = multipart({}, {"image": ("notes.txt", text, "text/plain")})
    status, _, answer = http("POST", api_server.url + "/v1/jobs", body, {"Content-Type": ctype})
    assert status == 415
    detail = json.loads(answer)["detail"]

    session = open_page(api_server.url)
    page = session.page
    page.locator("#file-input").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": text}
    )
    page.wait_for_selector(DONE, state="attached")
    assert page.locator("#result-stage").get_attribute("data-status") == "failed"
    assert page.locator("#result-error").inner_text() == detail
    assert detail in page.locator("#status").inner_text()
    assert page.locator("#download").get_attribute("aria-disabled") == "true"
    session.shot("rejected")
    no_console_errors(session, allowed=("415",))


def test_an_empty_file_is_named_as_such(api_server: ApiProcess, open_page) -> None:
    # the page asked POST /v1/uploads for 0 bytes and showed its answer, "`bytes` must
    # be positive": a field of a request the user never made
    session = open_page(api_server.url)
    page = session.page
    page.locator("#file-input").set_input_files(
        {"name": "empty.png", "mimeType": "image/png", "buffer": b""}
    )
    page.wait_for_selector(DONE, state="attached")
    assert page.locator("#result-stage").get_attribute("data-status") == "failed"
    assert "empty.png is empty (0 bytes)" in page.locator("#status").inner_text()
    assert "bytes` must be" not in page.locator("body").inner_text()
    no_console_errors(session)


def test_lost_connection_is_shown_and_recovers(
    api_server: ApiProcess, open_page, photos: list[Path]
) -> None:
    session = open_page(api_server.url)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    # the status polls fail as if the network were gone, until the route is removed
    dropped: list[str] = []

    def drop(route: Any) -> None:
        dropped.append(route.request.url)
        route.abort("internetdisconnected")

    page.route("**/v1/jobs/job_*", drop)
    page.locator("#file-input").set_input_files(str(photos[0]))
    alert = page.locator("#alert")
    alert.wait_for(state="visible")
    assert "Connection lost" in alert.inner_text()
    assert page.locator("#result-progress").is_visible()
    session.shot("connection-lost")
    page.unroute("**/v1/jobs/job_*")
    wait_result(session)
    assert alert.is_hidden()
    assert dropped
    session.shot("recovered")
    no_console_errors(session, allowed=("ERR_INTERNET_DISCONNECTED",))


def test_several_files_become_one_batch(
    api_server: ApiProcess, open_page, photos: list[Path], tmp_path: Path
) -> None:
    session = open_page(api_server.url)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files([str(p) for p in photos])
    items = page.locator("#items .item")
    items.first.wait_for()
    assert items.count() == 3
    session.shot("working")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#items .item')]"
        ".every(i => i.dataset.status === 'succeeded' || i.dataset.status === 'failed')"
    )
    statuses = [items.nth(i).get_attribute("data-status") for i in range(3)]
    assert statuses == ["succeeded"] * 3, page.locator("#items").inner_text()
    wait_result(session)
    session.shot("done")
    batches = session.calls("POST", "/v1/batches")
    assert len(batches) == 1
    assert not session.calls("POST", "/v1/jobs")
    assert "3 of 3 done" in page.locator("#status").inner_text()
    # one upload each, then a JSON batch of their keys, named for results.zip
    assert len(session.calls("PUT", "/uploads/")) == 3
    items_sent = json.loads(batches[0].post_data or "{}")["items"]
    assert [i["metadata"]["name"] for i in items_sent] == [p.name for p in photos]

    # choose the second image: its own result and download name
    items.nth(1).locator(".item-select").click()
    name, data = download(session, tmp_path)
    assert name == f"{photos[1].stem}-cutout.png"
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == Image.open(photos[1]).size

    # all results at once, as the batch's zip
    with page.expect_download() as info:
        page.get_by_role("button", name="Download all (.zip)").click()
    target = tmp_path / "all.zip"
    info.value.save_as(target)
    with zipfile.ZipFile(target) as archive:
        names = sorted(archive.namelist())
    assert names == sorted([f"{p.stem}.png" for p in photos] + ["manifest.csv"])

    # process again: a new batch on the same upload keys, nothing uploaded again
    session.requests.clear()
    page.get_by_label("Format").select_option("webp")
    page.get_by_role("button", name="Process again").click()
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('3 of 3 done')"
    )
    again = session.calls("POST", "/v1/batches")
    assert len(again) == 1
    assert [i["upload_key"] for i in json.loads(again[0].post_data or "{}")["items"]] == [
        i["upload_key"] for i in items_sent
    ]
    assert not session.calls("PUT", "/uploads/")
    assert not session.calls("POST", "/v1/uploads")
    session.shot("again-webp")
    no_console_errors(session)


def test_unreachable_storage_falls_back_to_multipart(
    api_server: ApiProcess, open_page, photos: list[Path]
) -> None:
    session = open_page(api_server.url)
    page = session.page
    # as when the signed URL names a host the browser cannot reach (or CORS refuses)
    page.route("**/cutout-test/uploads/**", lambda route: route.abort("addressunreachable"))
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files(str(photos[0]))
    first = wait_result(session)
    posts = session.calls("POST", "/v1/jobs")
    assert len(posts) == 1
    assert (posts[0].headers.get("content-type") or "").startswith("multipart/form-data")

    # process again sends the File it kept (there is no upload_key to reuse)
    session.requests.clear()
    page.get_by_label("Model").select_option("u2net")
    page.get_by_role("button", name="Process again").click()
    page.wait_for_function(
        f"() => {{ const s = document.getElementById('result-stage');"
        f" return s.dataset.jobId !== '{first}' && s.dataset.status === 'succeeded'; }}"
    )
    assert not session.calls("POST", "/v1/uploads"), "it keeps to multipart once storage failed"
    posts = session.calls("POST", "/v1/jobs")
    assert len(posts) == 1
    assert (posts[0].headers.get("content-type") or "").startswith("multipart/form-data")
    session.shot("result")
    no_console_errors(session, allowed=("ERR_ADDRESS_UNREACHABLE",))


def test_narrow_screen_375px(api_server: ApiProcess, open_page, photos: list[Path]) -> None:
    session = open_page(api_server.url, width=375, height=812)
    page = session.page
    session.shot("empty")
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files(str(photos[0]))
    wait_result(session)
    session.shot("result")
    page.locator("summary", has_text="Advanced options").click()
    session.shot("options")
    # nothing sticks out sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for selector in ("#download", "#apply", "#model", "#result-img"):
        box = page.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0, selector
        assert box["x"] + box["width"] <= 375, selector
    no_console_errors(session)


def test_keyboard_only(api_server: ApiProcess, open_page, photos: list[Path]) -> None:
    session = open_page(api_server.url)
    page = session.page
    # a listener turns on Playwright's file chooser interception now, not racing the key
    choosers: list[Any] = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    page.wait_for_timeout(200)
    # the skip link, then the file chooser is the first stop on the page
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # the API link in the header
    assert page.evaluate("document.activeElement.id") == "file-input"
    page.keyboard.press("Enter")
    until(page, lambda: choosers, "the file chooser to open on Enter")
    session.shot("focus-on-upload")
    # options reachable and operable by keyboard
    page.locator("#model").focus()
    page.keyboard.press("ArrowDown")  # u2net → u2netp
    assert page.locator("#model").input_value() == "u2netp"
    choosers[0].set_files(str(photos[0]))
    wait_result(session)
    page.locator("#download").focus()
    assert page.evaluate("document.activeElement.id") == "download"
    session.shot("focus-on-download", full_page=False)
    no_console_errors(session)


def test_api_key_field_when_keys_are_on(
    api_server_with_keys: ApiProcess, open_page, photos: list[Path], tmp_path: Path
) -> None:
    api = api_server_with_keys
    session = open_page(api.url)
    page = session.page
    key_field = page.get_by_label("API key")
    key_field.wait_for()
    session.shot("asks-for-key")
    key_field.fill("not-the-right-key-123456")
    page.get_by_role("button", name="Use key").click()
    page.wait_for_function(
        "() => document.getElementById('key-help').textContent.includes('not accepted')"
    )
    key_field.fill(API_KEY)
    page.get_by_role("button", name="Use key").click()
    page.wait_for_function(
        "() => document.getElementById('key-help').textContent.includes('accepted.')"
    )
    assert page.evaluate("sessionStorage.getItem('cutout.apiKey')") == API_KEY
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files(str(photos[0]))
    job_id = wait_result(session)
    session.shot("result-with-key")
    _, data = download(session, tmp_path)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    assert data == job_result(api, job_id, headers=auth)
    # the page reloads with the key from this tab's session storage
    page.reload()
    page.wait_for_function(
        "() => document.getElementById('key-help').textContent.includes('accepted.')"
    )
    no_console_errors(session, allowed=("401",))


def test_page_headers_and_caching(api_server: ApiProcess) -> None:
    status, headers, body = http("GET", api_server.url + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-cache"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "img-src 'self' blob: data:" in csp
    assert "script-src 'self';" in csp  # no 'unsafe-inline'
    assert "connect-src 'self' http://127.0.0.1:" in csp  # the storage origin, for the PUT
    page = body.decode()
    assert "<script>" not in page  # no inline script
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing from other hosts

    # assets: linked with their content hash, cached for a year with it, revalidated without
    script = re.search(r'src="(/static/app\.js\?v=\w+)"', page)
    assert script
    status, headers, _ = http("GET", api_server.url + script.group(1))
    assert status == 200
    assert headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in headers["Cache-Control"]
    status, headers, _ = http("GET", api_server.url + "/static/app.js")
    assert headers["Cache-Control"] == "no-cache"
    status, _, _ = http(
        "GET", api_server.url + "/static/app.js", headers={"If-None-Match": headers["ETag"]}
    )
    assert status == 304
    for path in ("/static/../web.py", "/static/missing.js", "/static/index.html"):
        status, headers, _ = http("GET", api_server.url + path)
        assert status == 404, path

    status, _, answer = http("GET", api_server.url + "/v1/info")
    info = json.loads(answer)
    assert info["auth"] is False
    assert set(info["models"]) == {"u2net", "u2netp"}
    assert info["max_upload_bytes"] > 0


def test_fast_box_is_hidden_when_no_worker_serves_it(api_server: ApiProcess, open_page) -> None:
    """The tier's worker runs with CUTOUT_FAST=off: its heartbeat says it serves no fast
    mode, /v1/info says so, and the page offers no Fast box (the API would refuse it)."""
    from tests.integration.conftest import wait_for

    def info() -> dict[str, Any]:
        return json.loads(http("GET", api_server.url + "/v1/info")[2])  # type: ignore[no-any-return]

    # the worker's first heartbeat comes once its pool child has loaded the models
    wait_for(lambda: info()["fast"] is False, timeout=120, interval=0.5)
    session = open_page(api_server.url)
    page = session.page
    page.locator("#advanced summary").click()
    page.locator("#fast").wait_for(state="hidden")
    assert page.locator("#mask-only").is_visible()
    session.shot("fast-hidden")
    no_console_errors(session)
