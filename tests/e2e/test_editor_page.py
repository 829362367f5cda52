"""The batch review list and the cutout editor (issue 27), in Chromium against the real
API + worker (keys on, u2netp, small photos).

A shop's tool links the review list by URL: the page asks for the API key, lists the
batch's cutouts worst first with thumbnails, and opens the worst in the editor. There a
stroke of the erase brush over the subject and one of the restore brush over the backdrop
(drawn with the mouse, the second after zooming in), a third stroke undone, then Save:
the mask the page sends is 0 inside the erase stroke, 255 inside the restore stroke and
untouched where the undone stroke was; the worker's new version keeps the job's canvas
and background colour, showing the colour where the subject was erased and the photo
where it was restored. A second test lays the review list and the editor out at 375 px.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from tests.e2e.conftest import API_KEY
from tests.e2e.test_web import no_console_errors
from tests.integration.conftest import ApiProcess

AUTH = {"Authorization": f"Bearer {API_KEY}"}
W, H = 240, 180
BACKDROP = (214, 218, 224)
SUBJECT = (196, 48, 36)
BG_COLOR = "#1f4fe0"
CANVAS = (260, 200)
FILL = 0.9
ERASE = ((112, 80), (140, 100))  # a stroke through the middle of the subject
UNDONE = ((100, 112), (130, 112))  # erased, then undone
RESTORE = ((22, 20), (40, 20))  # a stroke over the backdrop, top left
READY = "() => document.getElementById('editor').dataset.state === 'ready'"


def photo(seed: int) -> bytes:
    """A red ellipse on a plain light backdrop (its size varies a little with ``seed``)."""
    pixels = np.full((H, W, 3), BACKDROP, np.uint8)
    yy, xx = np.mgrid[:H, :W]
    pixels[(xx - 125) ** 2 / (62 + seed) ** 2 + (yy - 98) ** 2 / 50**2 < 1] = SUBJECT
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def submit_batch(api: ApiProcess) -> str:
    options = {
        "model": "u2netp",
        "bg_color": BG_COLOR,
        "canvas": f"{CANVAS[0]}x{CANVAS[1]}",
        "fill": FILL,
    }
    files = [("images", (f"photo-{i}.png", photo(i), "image/png")) for i in range(2)]
    response = requests.post(
        f"{api.url}/v1/batches",
        headers=AUTH,
        files=files,
        data={"options": json.dumps(options)},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def job(api: ApiProcess, job_id: str) -> dict[str, Any]:
    response = requests.get(f"{api.url}/v1/jobs/{job_id}", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def batch(api_server_with_keys: ApiProcess) -> str:
    """A finished batch of two photos with a background colour and a canvas."""
    batch_id = submit_batch(api_server_with_keys)
    for _ in range(600):
        got = requests.get(
            f"{api_server_with_keys.url}/v1/batches/{batch_id}", headers=AUTH, timeout=30
        )
        counts = got.json()["counts"]
        if counts["succeeded"] + counts["failed"] == counts["total"]:
            assert counts["succeeded"] == 2, counts
            return batch_id
        time.sleep(0.2)
    raise AssertionError("the batch did not finish")


def open_review(
    open_page: Any, api: ApiProcess, batch_id: str, query: bool = False, **size: int
) -> Any:
    """The review list by its URL, the key given when the page asks for it."""
    where = f"?batch={batch_id}&show=all" if query else f"#/batches/{batch_id}/review?show=all"
    session = open_page(f"{api.url}/{where}", **size)
    page = session.page
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Use key").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#review-list .item img[src]').length === 2"
    )
    return session


def to_page(page: Any, x: float, y: float) -> tuple[float, float]:
    """A point of the photo where the editor shows it on the screen."""
    box = page.locator("#editor-canvas").bounding_box()
    return box["x"] + x * box["width"] / W, box["y"] + y * box["height"] / H


def stroke(page: Any, start: tuple[int, int], end: tuple[int, int]) -> None:
    page.mouse.move(*to_page(page, *start))
    page.mouse.down()
    for t in (0.25, 0.5, 0.75, 1.0):
        x = start[0] + (end[0] - start[0]) * t
        y = start[1] + (end[1] - start[1]) * t
        page.mouse.move(*to_page(page, x, y))
    page.mouse.up()


def pointer(
    page: Any,
    kind: str,
    x: float,
    y: float,
    device: str = "touch",
    pressure: float = 0.5,
    finger: int = 7,
) -> None:
    """A finger's (or a pen's) pointer event on the editor's view."""
    init = {"pointerId": finger, "pointerType": device, "isPrimary": finger == 7, "button": 0}
    event = {**init, "clientX": x, "clientY": y, "pressure": pressure}
    page.locator("#editor-view").dispatch_event(kind, event)


def window(pixels: np.ndarray, x: float, y: float, r: int = 2) -> np.ndarray:
    xi, yi = round(x), round(y)
    return pixels[yi - r : yi + r + 1, xi - r : xi + r + 1]


def on_canvas(subject: dict[str, int], x: float, y: float) -> tuple[float, float]:
    """Where the photo's (x, y) lands on the job's canvas (worker/engine/compose.py:
    the subject's box scaled to FILL of the canvas, centred)."""
    bw, bh = subject["width"], subject["height"]
    scale = min(FILL * CANVAS[0] / bw, FILL * CANVAS[1] / bh)
    sw, sh = round(bw * scale), round(bh * scale)
    left, top = (CANVAS[0] - sw) // 2, (CANVAS[1] - sh) // 2
    return left + (x - subject["left"]) * sw / bw, top + (y - subject["top"]) * sh / bh


def middle(segment: tuple[tuple[int, int], tuple[int, int]]) -> tuple[float, float]:
    (x0, y0), (x1, y1) = segment
    return (x0 + x1) / 2, (y0 + y1) / 2


def test_review_list_to_editor_to_a_new_version(
    api_server_with_keys: ApiProcess, open_page: Any, batch: str, shots: Path
) -> None:
    api = api_server_with_keys
    session = open_review(open_page, api, batch)
    page = session.page
    # worst first: the list's order is the API's score order
    listed = requests.get(
        f"{api.url}/v1/batches/{batch}/jobs?order=score", headers=AUTH, timeout=30
    ).json()["items"]
    shown = page.locator("#review-list .item").evaluate_all(
        "items => items.map(i => i.dataset.jobId)"
    )
    assert shown == [j["id"] for j in listed]
    assert "Review batch" in page.locator("#review-title").inner_text()
    session.shot("review-list")
    # "Needs a look" lists the API's review=true jobs (the address follows the choice)
    review = requests.get(
        f"{api.url}/v1/batches/{batch}/jobs?order=score&review=true", headers=AUTH, timeout=30
    ).json()["items"]
    page.get_by_label("Show").select_option("review")
    page.wait_for_function("() => !location.hash.includes('show=all')")
    page.wait_for_function(
        f"() => document.querySelectorAll('#review-list .item').length === {len(review)}"
        " && document.getElementById('review-list').getAttribute('aria-busy') === 'false'"
    )
    assert page.locator("#review-empty").is_visible() == (not review)
    if review:
        page.get_by_label("Show").select_option("all")
    else:
        page.get_by_role("button", name="Show all scored cutouts").click()
    page.wait_for_function("() => document.querySelectorAll('#review-list .item').length === 2")
    assert "show=all" in page.evaluate("location.hash")

    page.locator("#review-list .item-select").first.click()
    page.wait_for_function(READY)
    editor = page.locator("#editor")
    job_id = editor.get_attribute("data-job-id")
    assert job_id == listed[0]["id"]
    assert editor.get_attribute("data-width") == str(W)
    # over the job's own background colour
    assert page.locator("#editor-backdrop").input_value() == "job"
    session.shot("editor-open")

    page.keyboard.press("e")
    page.locator("#editor-size").fill("16")
    stroke(page, *ERASE)
    stroke(page, *UNDONE)
    assert page.locator("#editor-undo").is_enabled()
    page.keyboard.press("Control+z")
    assert page.locator("#editor-redo").is_enabled()

    # zoom in, then restore with the brush at the new scale
    fitted = float(editor.get_attribute("data-zoom") or 0)
    page.get_by_role("button", name="Zoom in").click()
    page.keyboard.press("+")
    zoomed = float(editor.get_attribute("data-zoom") or 0)
    assert zoomed > fitted * 1.5, (fitted, zoomed)
    assert page.locator("#editor-canvas").bounding_box()["width"] > W * fitted * 1.5
    page.keyboard.press("0")  # fit, then zoom in around the top left corner
    page.mouse.move(*to_page(page, 30, 20))
    page.mouse.wheel(0, -300)
    assert float(editor.get_attribute("data-zoom") or 0) > fitted
    page.keyboard.press("r")
    stroke(page, *RESTORE)
    session.shot("editor-strokes")

    with page.expect_request(lambda r: r.method == "PUT" and r.url.endswith("/mask")) as put:
        page.get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.getElementById('editor').dataset.state === 'saved'")
    assert "version 2" in page.locator("#editor-status").inner_text()
    session.shot("editor-saved")

    # the mask as sent: the input's size, 0 and 255 inside the strokes, the undone one absent
    sent = put.value.post_data_buffer
    mask = Image.open(io.BytesIO(sent))
    assert mask.size == (W, H)
    alpha = np.asarray(mask.getchannel("A") if "A" in mask.getbands() else mask.convert("L"))
    assert (window(alpha, *middle(ERASE)) == 0).all()
    assert (window(alpha, *ERASE[0]) == 0).all()
    assert (window(alpha, *middle(RESTORE)) == 255).all()
    assert (window(alpha, *middle(UNDONE)) > 200).all()

    # the new version: corrected, on the job's canvas and background colour
    after = job(api, str(job_id))
    assert after["result"]["version"] == 2
    assert after["result"]["corrected"] is True
    assert after["options"]["bg_color"].lower().startswith(BG_COLOR)
    got = requests.get(f"{api.url}/v1/jobs/{job_id}/result", headers=AUTH, timeout=30)
    result = np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB")).astype(int)
    assert result.shape[:2] == (CANVAS[1], CANVAS[0])
    subject = after["result"]["subject"]
    blue = np.array([int(BG_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    erased = window(result, *on_canvas(subject, *middle(ERASE)), r=1)
    restored = window(result, *on_canvas(subject, *middle(RESTORE)), r=1)
    kept = window(result, *on_canvas(subject, *middle(UNDONE)), r=1)
    assert np.abs(erased - blue).max() <= 6, erased
    assert np.abs(restored - np.array(BACKDROP)).max() <= 10, restored
    assert np.abs(kept - np.array(SUBJECT)).max() <= 10, kept
    # the review list shows the new version; the focus is back on the cutout's item
    page.get_by_role("button", name="Close").click()
    focused = page.evaluate("document.activeElement.closest('.item')?.dataset.jobId")
    assert focused == job_id
    item = page.locator(f'#review-list .item[data-job-id="{job_id}"] .item-state')
    assert "version 2" in item.inner_text()
    # opened again, the editor starts from the corrected mask (GET /v1/jobs/{id}/mask)
    page.locator(f'#review-list .item[data-job-id="{job_id}"] .item-select').click()
    page.wait_for_function(READY)
    assert canvas_alpha(page, *map(round, middle(ERASE))) == 0
    assert canvas_alpha(page, *map(round, middle(RESTORE))) == 255
    assert canvas_alpha(page, *map(round, middle(UNDONE))) > 200
    page.get_by_role("button", name="Close").click()
    # a batch this key does not have: said so, nothing listed
    page.evaluate("location.hash = '#/batches/bat_00000000000000000000000000/review'")
    alert = page.locator("#review-alert")
    alert.wait_for(state="visible")
    assert "No batch bat_00000000000000000000000000 for this API key" in alert.inner_text()
    assert page.locator("#review-list .item").count() == 0
    assert not page.locator("#review-empty").is_visible()
    # the page learns that keys are on from GET /v1/info's 401, before the key is given;
    # the unknown batch is a 404
    no_console_errors(session, allowed=("401", "404"))


def test_review_list_and_editor_fit_375px(
    api_server_with_keys: ApiProcess, open_page: Any, batch: str
) -> None:
    # the query form of the address, for tools that cannot write a '#'
    session = open_review(open_page, api_server_with_keys, batch, width=375, height=740, query=True)
    assert session.page.evaluate("location.hash") == f"#/batches/{batch}/review?show=all"
    page = session.page
    session.shot("review-narrow")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.locator("#review-list .item-select").first.click()
    page.wait_for_function(READY)
    session.shot("editor-narrow", full_page=False)
    assert page.evaluate("document.getElementById('editor').scrollWidth") <= 375
    for selector in (
        "#editor-save",
        "#editor-close",
        "#editor-undo",
        "#editor-size",
        "#editor-view",
    ):
        box = page.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["width"] > 0, selector
        assert box["x"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= 375, (selector, box)
        assert box["y"] + box["height"] <= 740, (selector, box)
    # the shortcuts, as the page's help lists them, fit too
    page.get_by_text("Shortcuts", exact=True).click()
    panel = page.locator("#editor-help-panel")
    assert "Undo" in panel.inner_text()
    box = panel.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 375
    session.shot("editor-narrow-shortcuts", full_page=False)
    page.get_by_text("Shortcuts", exact=True).click()
    # the photo fits the view
    view = page.locator("#editor-view").bounding_box()
    canvas = page.locator("#editor-canvas").bounding_box()
    assert view["height"] >= 120, view
    assert canvas["x"] >= view["x"]
    assert canvas["x"] + canvas["width"] <= view["x"] + view["width"] + 1
    # touch: a tap-drag draws (a pointer of type touch)
    page.keyboard.press("e")
    assert not page.locator("#editor-undo").is_enabled()
    for kind, x in (("pointerdown", 100), ("pointermove", 140), ("pointerup", 140)):
        pointer(page, kind, *to_page(page, x, 90))
    assert page.locator("#editor-undo").is_enabled()
    assert canvas_alpha(page, 120, 90) == 0
    # a pen pressing lightly (0.25) draws a quarter of the 40 px brush: 10 px wide
    for kind, x in (("pointerdown", 100), ("pointermove", 150), ("pointerup", 150)):
        pointer(page, kind, *to_page(page, x, 125), device="pen", pressure=0.25)
    assert canvas_alpha(page, 125, 125) == 0
    assert canvas_alpha(page, 125, 136) > 240  # inside a full brush, outside the pen's
    # two fingers pinch outwards: the view zooms in, nothing is drawn
    zoom = float(page.locator("#editor").get_attribute("data-zoom") or 0)
    pointer(page, "pointerdown", *to_page(page, 110, 115))
    pointer(page, "pointerdown", *to_page(page, 140, 115), finger=8)
    pointer(page, "pointermove", *to_page(page, 100, 115))
    pointer(page, "pointermove", *to_page(page, 150, 115), finger=8)
    pointer(page, "pointerup", *to_page(page, 100, 115))
    pointer(page, "pointerup", *to_page(page, 150, 115), finger=8)
    assert float(page.locator("#editor").get_attribute("data-zoom") or 0) > zoom * 1.3
    assert canvas_alpha(page, 125, 115) > 240
    no_console_errors(session, allowed=("401",))


def canvas_alpha(page: Any, x: int, y: int) -> int:
    """The editor's shown cutout at the photo's (x, y): the photo is opaque, so its alpha
    there is the mask's."""
    return int(
        page.evaluate(
            "([x, y]) => document.getElementById('editor-canvas').getContext('2d')"
            ".getImageData(x, y, 1, 1).data[3]",
            [x, y],
        )
    )


def test_snap_to_edges_stops_at_the_photos_edge(
    api_server_with_keys: ApiProcess, open_page: Any, batch: str
) -> None:
    session = open_review(open_page, api_server_with_keys, batch)
    page = session.page
    page.locator("#review-list .item-select").first.click()
    page.wait_for_function(READY)
    first = page.locator("#editor").get_attribute("data-job-id")
    # Next: the list's second cutout
    page.get_by_role("button", name="Next ›").click()
    page.wait_for_function(
        f"() => document.getElementById('editor').dataset.jobId !== '{first}'"
        " && document.getElementById('editor').dataset.state === 'ready'"
    )
    assert page.get_by_role("button", name="‹ Previous").is_enabled()
    second = page.locator("#editor").get_attribute("data-job-id")
    # the keys the page's help lists for Previous and Next do the same
    for key, expected in (("Alt+ArrowLeft", first), ("Alt+ArrowRight", second)):
        page.keyboard.press(key)
        page.wait_for_function(
            f"() => document.getElementById('editor').dataset.jobId === '{expected}'"
            " && document.getElementById('editor').dataset.state === 'ready'"
        )
    assert "Previous or next" in (page.locator("#shortcuts").text_content() or "")
    # a hard erase over the subject's left edge (x about 63 at y 98), then a restore with
    # Snap to edges whose centre line is on the subject: its brush reaches x 50 to 110,
    # across the edge, but only the subject's side comes back
    page.keyboard.press("e")
    page.locator("#editor-size").fill("70")
    stroke(page, (63, 88), (63, 108))
    assert canvas_alpha(page, 56, 98) == 0
    assert canvas_alpha(page, 72, 98) == 0
    page.keyboard.press("r")
    page.keyboard.press("b")
    assert page.locator("#editor-snap").get_attribute("aria-pressed") == "true"
    page.locator("#editor-size").fill("60")
    stroke(page, (80, 92), (80, 104))
    session.shot("snap")
    assert canvas_alpha(page, 72, 98) == 255  # the subject's side: restored
    assert canvas_alpha(page, 66, 98) == 255
    assert canvas_alpha(page, 56, 98) == 0  # under the brush, across the edge: not
    assert canvas_alpha(page, 52, 98) == 0
    page.keyboard.press("Control+z")
    assert canvas_alpha(page, 72, 98) == 0
    no_console_errors(session, allowed=("401",))


def test_edit_the_cutout_under_a_result(
    api_server: ApiProcess, open_page: Any, tmp_path: Path
) -> None:
    """From the upload page: the result's own alpha is the starting mask (a transparent
    PNG), Save's new version replaces the preview and the API serves it."""
    path = tmp_path / "photo.png"
    path.write_bytes(photo(0))
    session = open_page(api_server.url)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files(str(path))
    page.wait_for_function(
        "() => document.getElementById('result-stage').dataset.status === 'succeeded'"
    )
    before = page.locator("#result-img").get_attribute("src")
    page.get_by_role("button", name="Edit the cutout").click()
    page.wait_for_function(READY)
    assert page.locator("#editor-backdrop").input_value() == "checker"
    assert canvas_alpha(page, 125, 98) > 240  # the model's own mask
    page.keyboard.press("e")
    page.locator("#editor-size").fill("24")
    stroke(page, (110, 98), (140, 98))
    page.keyboard.press("Control+s")
    page.wait_for_function("() => document.getElementById('editor').dataset.state === 'saved'")
    page.get_by_role("button", name="Close").click()
    assert page.locator("#result-img").get_attribute("src") != before
    job_id = page.locator("#result-stage").get_attribute("data-job-id")
    got = requests.get(f"{api_server.url}/v1/jobs/{job_id}/result", timeout=30)
    result = Image.open(io.BytesIO(got.content))
    assert result.size == (W, H)
    alpha = np.asarray(result.getchannel("A"))
    assert (window(alpha, 125, 98) == 0).all()
    assert (window(alpha, 125, 130) > 240).all()  # the subject outside the stroke
    assert got.headers.get("Content-Type") == "image/png"
    no_console_errors(session)
