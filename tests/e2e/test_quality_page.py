"""The quality score on the web page (issue 26), in Chromium against the real API + worker.

A clear photo (a plain subject on a plain background) and an all-one-colour image go in
together: the page shows a score beside each result, marks the one-colour image as
needing a look with the "no subject" flag in words, says how many need a look, and can
list them worst first or only those. Choosing the full score in the advanced options
sends `score: "full"` with the jobs: the API's own job objects say so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.e2e.test_web import no_console_errors
from tests.integration.conftest import ApiProcess, http

NO_SUBJECT = "The model found nothing to cut out."  # worker/engine/quality.py FLAGS
SCORE = re.compile(r"\b[01]\.\d\d\b")
ALL_DONE = (
    "() => { const items = [...document.querySelectorAll('#items .item')];"
    " return items.length === 2 && items.every(i => i.dataset.status === 'succeeded'); }"
)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """clear.jpg: a red oval on a pale plain background; blank.png: one grey colour."""
    folder = tmp_path_factory.mktemp("quality-page")
    pixels = np.full((360, 480, 3), (200, 210, 225), np.uint8)
    yy, xx = np.mgrid[:360, :480]
    pixels[(xx - 240) ** 2 / 120**2 + (yy - 190) ** 2 / 140**2 < 1] = (180, 60, 40)
    clear = folder / "clear.jpg"
    Image.fromarray(pixels).save(clear, quality=92)
    blank = folder / "blank.png"
    Image.new("RGB", (320, 240), (128, 140, 150)).save(blank)
    return clear, blank


def item(page: Any, name: str) -> Any:
    return page.locator("#items .item", has=page.locator(".item-name", has_text=name))


def shown_names(page: Any) -> list[str]:
    return page.locator("#items .item .item-name").all_inner_texts()  # type: ignore[no-any-return]


def api_jobs(api: ApiProcess, batch_id: str) -> list[dict[str, Any]]:
    status, _, body = http("GET", f"{api.url}/v1/batches/{batch_id}/jobs?limit=100")
    assert status == 200, body[:300]
    return json.loads(body)["items"]  # type: ignore[no-any-return]


def test_each_result_shows_its_score_and_the_one_colour_image_needs_a_look(
    api_server: ApiProcess, open_page, images: tuple[Path, Path]
) -> None:
    clear, blank = images
    session = open_page(api_server.url)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files([str(clear), str(blank)])
    page.wait_for_function(ALL_DONE)
    session.shot("done")

    # each item carries its score in words, the one-colour one marked (not colour alone)
    blank_item, clear_item = item(page, "blank.png"), item(page, "clear.jpg")
    assert blank_item.get_attribute("data-review") == "true"
    assert clear_item.get_attribute("data-review") == "false"
    blank_mark = blank_item.locator(".item-quality").inner_text()
    clear_mark = clear_item.locator(".item-quality").inner_text()
    assert "Needs a look" in blank_mark, blank_mark
    assert SCORE.search(blank_mark), blank_mark
    assert "Looks right" in clear_mark, clear_mark
    assert SCORE.search(clear_mark), clear_mark
    label = blank_item.locator(".item-select").get_attribute("aria-label") or ""
    assert "Needs a look" in label, label

    # how many need a look: over the list and in the status line
    assert page.locator("#review-summary").inner_text() == "1 of 2 needs a look."
    assert "2 of 2 done · 1 needs a look" in page.locator("#status").inner_text()

    # the selected result (the first, the clear photo) has its score under it
    panel = page.locator("#result-quality")
    assert panel.is_visible()
    assert "Looks right" in panel.inner_text()
    assert SCORE.search(panel.locator(".quality-score").inner_text())

    # the one-colour image: needs a look, and why, in words
    blank_item.locator(".item-select").click()
    page.wait_for_function(
        "() => document.getElementById('result-quality').dataset.review === 'true'"
    )
    text = panel.inner_text()
    assert "Needs a look" in text, text
    assert "basic score" in text, text
    flag = panel.locator('li[data-flag="no_subject"]')
    assert flag.inner_text() == NO_SUBJECT
    session.shot("needs-a-look")

    # worst first, then only those that need a look
    assert shown_names(page) == ["clear.jpg", "blank.png"]
    page.get_by_label("Order").select_option("worst")
    assert shown_names(page) == ["blank.png", "clear.jpg"]
    page.get_by_label("Needs a look only (1)").check()
    assert shown_names(page) == ["blank.png"]
    session.shot("needs-a-look-only")
    page.get_by_label("Needs a look only (1)").uncheck()
    page.get_by_label("Order").select_option("chosen")
    assert shown_names(page) == ["clear.jpg", "blank.png"]

    # the full score: sent with the batch, recorded on every job, shown on the page
    before = page.locator("#result-stage").get_attribute("data-job-id")
    session.requests.clear()
    page.locator("#advanced summary").click()
    page.get_by_label("Quality score").select_option("full")
    page.get_by_role("button", name="Process again").click()
    page.wait_for_function(
        f"() => document.getElementById('result-stage').dataset.jobId !== '{before}'"
    )
    page.wait_for_function(ALL_DONE)
    posts = session.calls("POST", "/v1/batches")
    assert len(posts) == 1
    assert json.loads(posts[0].post_data or "{}")["options"]["score"] == "full"
    job_id = page.locator("#result-stage").get_attribute("data-job-id")
    status, _, body = http("GET", f"{api_server.url}/v1/jobs/{job_id}")
    assert status == 200, body[:300]
    jobs = api_jobs(api_server, json.loads(body)["batch_id"])
    assert [j["options"]["score"] for j in jobs] == ["full", "full"]
    assert [j["result"]["quality"]["level"] for j in jobs] == ["full", "full"]
    assert "full score" in panel.inner_text()
    session.shot("full")
    no_console_errors(session)


def test_the_score_fits_a_375px_screen(
    api_server: ApiProcess, open_page, images: tuple[Path, Path]
) -> None:
    clear, blank = images
    session = open_page(api_server.url, width=375, height=812)
    page = session.page
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files([str(clear), str(blank)])
    page.wait_for_function(ALL_DONE)
    item(page, "blank.png").locator(".item-select").click()
    page.wait_for_function(
        "() => document.getElementById('result-quality').dataset.review === 'true'"
    )
    session.shot("narrow")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    selectors = (
        "#result-quality .quality-badge",
        "#result-quality .quality-score",
        '#result-quality li[data-flag="no_subject"]',
        "#review-summary",
        "#list-order",
        "#review-only",
        "#items .item.is-review .item-quality",
    )
    for selector in selectors:
        target = page.locator(selector).first
        target.scroll_into_view_if_needed()
        assert target.is_visible(), selector
        box = target.bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= 375, (selector, box)
        # the text is not cut off inside its own box
        clipped = target.evaluate("e => e.scrollWidth > e.clientWidth + 1")
        assert not clipped, selector
    no_console_errors(session)
