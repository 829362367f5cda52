"""The page's "Download all (.zip)" in Chromium (issue 29, item 14): the batch's
results.zip holds only finished results, so the button waits, disabled and saying "x of
y ready", until every image has finished, then downloads all of them.

States are shown as the tier allows: the page's own status polls and result downloads
are held (Playwright routes) so that "queued" and "two of three fetched" last long enough
to look at; the jobs themselves run on the real worker.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from tests.e2e.test_web import no_console_errors, photos, until  # noqa: F401
from tests.integration.conftest import ApiProcess

BUTTON = "#download-all"


def is_result_download(url: str) -> bool:
    """A job's result fetched by the page (not results.zip)."""
    return "/v1/jobs/job_" in url and url.split("?")[0].endswith("/result")


def test_download_all_waits_for_every_image_and_says_how_many_are_ready(
    api_server: ApiProcess,
    open_page,
    photos: list[Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    session = open_page(api_server.url)
    page = session.page
    listings: list[str] = []
    polls: list[Any] = []
    results: list[Any] = []
    holding = {"polls": True, "results": True}

    def hold_poll(route: Any) -> None:
        listings.append(route.request.url)
        # the first listing is the page learning the batch's job ids; later ones are polls
        if holding["polls"] and len(listings) > 1:
            polls.append(route)
        else:
            route.continue_()

    def hold_result(route: Any) -> None:
        if holding["results"]:
            results.append(route)
        else:
            route.continue_()

    page.route("**/v1/batches/*/jobs*", hold_poll)
    page.route(is_result_download, hold_result)
    page.get_by_label("Model").select_option("u2netp")
    page.locator("#file-input").set_input_files([str(p) for p in photos])

    # the batch is queued (its first status poll held): the button is there, disabled
    until(page, lambda: polls, "the batch's first status poll")
    button = page.locator(BUTTON)
    button.wait_for(state="visible")
    page.wait_for_function(
        "() => document.getElementById('download-all').textContent.includes('0 of 3 ready')"
    )
    assert button.is_disabled()
    statuses = page.locator("#items .item").evaluate_all("els => els.map(e => e.dataset.status)")
    assert "succeeded" not in statuses, statuses
    session.shot("queued")

    # the worker finishes; the page fetches the results one by one: hold them, let two go
    holding["polls"] = False
    for route in polls:
        route.continue_()
    for released in range(2):
        until(page, lambda n=released: len(results) > n, f"result download {released + 1}")
        results[released].continue_()
    until(page, lambda: len(results) == 3, "the third result download")
    page.wait_for_function(
        "() => document.getElementById('download-all').textContent.includes('2 of 3 ready')"
    )
    assert button.is_disabled()
    assert button.inner_text() == "Download all (.zip) · 2 of 3 ready"
    session.shot("two-of-three")

    # the last one arrives: enabled, and the zip holds all three
    holding["results"] = False
    results[2].continue_()
    page.wait_for_function("() => !document.getElementById('download-all').disabled")
    assert button.inner_text() == "Download all (.zip)"
    session.shot("all-ready")
    with page.expect_download() as info:
        button.click()
    target = tmp_path / "all.zip"
    info.value.save_as(target)
    with zipfile.ZipFile(target) as archive:
        names = sorted(archive.namelist())
    assert names == sorted([f"{p.stem}.png" for p in photos] + ["manifest.csv"])
    no_console_errors(session)
