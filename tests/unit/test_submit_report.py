"""``cutout submit``'s report.csv rows and closing line from the resume state's entries,
including entries saved by a version without quality scores (a run resumed across the
upgrade) and jobs of a service that does not score."""

from __future__ import annotations

from typing import Any

from cutout.submit.common import REPORT_COLUMNS, new_entry
from cutout.submit.report import report_rows, review_line


def entry(**changes: Any) -> dict[str, Any]:
    made = new_entry()
    made.update({"batch": 0, "job_id": "job_1", "status": "succeeded", "downloaded": True})
    made.update(changes)
    return made


def test_an_entry_saved_before_scores_existed_gets_empty_quality_cells() -> None:
    old = entry()
    del old["quality"]  # the state of an earlier version has no such key
    [row] = report_rows({"a.jpg": old}, "png")
    cells = dict(zip(REPORT_COLUMNS, row, strict=True))
    assert cells["output_file"] == "a.png"
    assert (cells["score"], cells["review"], cells["flags"]) == ("", "", "")
    assert review_line([row], "out/report.csv") is None  # no number without scores


def test_the_closing_line_counts_the_jobs_marked_for_review() -> None:
    files = {
        "a.jpg": entry(quality={"score": 0.41, "flags": ["touches_frame"], "review": True}),
        "b.jpg": entry(quality={"score": 0.97, "flags": [], "review": False}),
        "c.jpg": entry(quality=None),  # succeeded, not scored
        "d.jpg": entry(status="failed", error={"code": "invalid_image", "message": "x"}),
    }
    rows = report_rows(files, "webp")
    cells = {row[0]: dict(zip(REPORT_COLUMNS, row, strict=True)) for row in rows}
    assert (cells["a.jpg"]["score"], cells["a.jpg"]["review"]) == ("0.41", "true")
    assert cells["a.jpg"]["flags"] == "touches_frame"
    assert cells["d.jpg"]["score"] == ""
    line = review_line(rows, "out/report.csv")
    assert line is not None
    assert line.startswith("1 of 3 cutouts need a look")
    assert line.endswith("see out/report.csv")
