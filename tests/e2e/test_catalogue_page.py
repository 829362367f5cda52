"""The page's catalogue outputs (issue 16) in Chromium: the subject's box drawn on the
original, a background image uploaded from the page, the drop shadow and the ZIP."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from tests.e2e.test_web import DONE, download, no_console_errors, photos, rgba, wait_result  # noqa: F401
from tests.integration.conftest import ApiProcess, http


def job(api: ApiProcess, job_id: str) -> dict:
    status, _, raw = http("GET", f"{api.url}/v1/jobs/{job_id}")
    assert status == 200, raw
    return json.loads(raw)


def test_subject_box_background_image_and_shadow(
    api_server: ApiProcess,
    open_page,
    photos: list[Path],  # noqa: F811
    shots: Path,
    tmp_path: Path,
) -> None:
    backdrop = tmp_path / "backdrop.png"
    Image.new("RGB", (300, 200), (10, 190, 40)).save(backdrop)
    session = open_page(api_server.url)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#bg-image").set_input_files(str(backdrop))
    page.get_by_label("Drop shadow under the subject").check()
    photo = photos[1]
    page.locator("#file-input").set_input_files(str(photo))
    job_id = wait_result(session)
    page.wait_for_selector("#subject-box:not([hidden])")
    session.shot("subject-box")

    finished = job(api_server, job_id)
    assert finished["options"]["shadow"] is True
    assert finished["options"]["bg_upload_key"].startswith("uploads/")
    subject = finished["result"]["subject"]
    # the box is drawn where the subject is: its place on the displayed original, within
    # a pixel (the original is scaled to fit its stage)
    drawn = page.evaluate(
        """() => {
          const img = document.getElementById('original-img').getBoundingClientRect();
          const box = document.getElementById('subject-box').getBoundingClientRect();
          const n = document.getElementById('original-img');
          return {img: [img.left, img.top, img.width, img.height],
                  box: [box.left, box.top, box.width, box.height],
                  natural: [n.naturalWidth, n.naturalHeight],
                  data: document.getElementById('subject-box').dataset.box};
        }"""
    )
    left, top, width, height = drawn["img"]
    sx, sy = width / drawn["natural"][0], height / drawn["natural"][1]
    expected = (
        left + subject["left"] * sx,
        top + subject["top"] * sy,
        subject["width"] * sx,
        subject["height"] * sy,
    )
    for got, want in zip(drawn["box"], expected, strict=True):
        assert abs(got - want) <= 1.5, (drawn, expected)
    assert drawn["data"] == ",".join(str(subject[k]) for k in ("left", "top", "width", "height"))
    # the box covers the subject only, not the whole photo
    assert 0.05 < subject["share"] < 0.95

    name, data = download(session, tmp_path)
    assert name == f"{photo.stem}-cutout.png"
    pixels = rgba(data).astype(int)
    assert (pixels[..., 3] == 255).all(), "a background image leaves no transparency"
    # the backdrop's green where the photo has no subject (a corner)
    assert pixels[2, 2, 1] > 150
    assert pixels[2, 2, 0] < 80
    no_console_errors(session)


def test_zip_download(
    api_server: ApiProcess,
    open_page,
    photos: list[Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    session = open_page(api_server.url)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    page.get_by_label("Format").select_option("zip")
    page.locator("#file-input").set_input_files(str(photos[0]))
    page.wait_for_selector(DONE, state="attached")
    assert page.locator("#result-stage").get_attribute("data-status") == "succeeded"
    page.wait_for_selector("#result-note:not([hidden])")
    session.shot("zip")
    name, data = download(session, tmp_path)
    assert name == f"{photos[0].stem}-cutout.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
        alpha = np.asarray(Image.open(io.BytesIO(archive.read("alpha.png"))))
    assert alpha.max() == 255
    assert alpha.min() == 0
