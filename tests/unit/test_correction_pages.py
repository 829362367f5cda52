"""GET /v1/corrections' parameters (api/correctionpages.py) and the export's manifest
(cutout/corrections/manifest.py): what a client sends back is read as it was given."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from api.correctionpages import Cursor, Query, iso, since_arg
from cutout.corrections.manifest import read_rows, row_for, write_rows
from shared.errors import InvalidRequest


def test_a_cursor_comes_back_as_it_was_given() -> None:
    cursor = Cursor(1765097322.123456, "job_01m97v174n2zkby16pbjjexxwf")
    assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize("text", ["", "x", "Yw", "Y2luZnxqb2JfeA", "ZjF8am9iX3g"])
def test_a_cursor_not_given_out_is_refused_by_name(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Query.from_args({"cursor": text} if text else {"cursor": "%%%"})
    assert caught.value.extra["field"] == "cursor"


def test_since_takes_rfc3339_with_an_offset_and_an_items_own_time_back() -> None:
    assert since_arg("2026-12-01T00:00:00Z") == since_arg("2026-12-01T01:00:00+01:00")
    assert since_arg("2026-12-01t00:00:00z") == since_arg("2026-12-01T00:00:00Z")
    at = 1765097322.123456
    assert since_arg(iso(at)) == at  # corrected_at given back is that very entry's time
    assert since_arg(None) == since_arg("") == 0.0


@pytest.mark.parametrize(
    "text", ["yesterday", "2026-12-01", "2026-12-01T00:00:00", "1765097322", "2026-13-01T00:00Z"]
)
def test_since_without_a_time_or_an_offset_is_refused_by_name(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        since_arg(text)
    assert caught.value.extra["field"] == "since"


def test_the_manifest_keeps_one_row_per_job_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    item = {
        "job_id": "job_b",
        "batch_id": None,
        "version": 2,
        "corrected_at": "2026-12-07T08:00:00.000001Z",
        "metadata": {"sku": "W-1", "category": "watches"},
    }
    older = {**item, "job_id": "job_a", "corrected_at": "2026-12-06T08:00:00Z", "metadata": {}}
    rows = {
        "job_b": row_for(item, "images/job_b.jpg", "masks/job_b.png", "corrections"),
        "job_a": row_for(older, "images/job_a.png", "masks/job_a.png", "corrections"),
    }
    write_rows(path, rows)
    written = list(csv.DictReader(path.open()))
    assert [row["job_id"] for row in written] == ["job_a", "job_b"]
    assert [row["category"] for row in written] == ["corrections", "watches"]
    assert list(written[0])[:3] == ["image", "mask", "category"]
    assert read_rows(path) == rows
    stamp = path.stat().st_mtime_ns
    write_rows(path, rows)  # unchanged: not written again
    assert path.stat().st_mtime_ns == stamp
