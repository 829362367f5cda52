"""``OUT/report.csv`` of ``cutout submit``: one row per file (docs/submit.md), and the
closing line counting the cutouts the service marked for review."""

from __future__ import annotations

import csv
import io
from typing import Any

from cutout.submit.common import REPORT_COLUMNS, outcome, output_name


def _quality_cells(quality: Any) -> list[str]:
    """``score``, ``review``, ``flags`` from a job's ``result.quality`` (empty without
    one: a job from a service without scores, or one whose cutout could not be scored)."""
    if not isinstance(quality, dict) or quality.get("score") is None:
        return ["", "", ""]
    review = quality.get("review")
    return [
        str(quality["score"]),
        "" if review is None else str(bool(review)).lower(),
        " ".join(str(flag) for flag in quality.get("flags") or ()),
    ]


def report_rows(files: dict[str, dict[str, Any]], extension: str) -> list[list[str]]:
    """The rows of report.csv, sorted by file, in :data:`REPORT_COLUMNS`' order."""
    rows = []
    for name, entry in sorted(files.items()):
        result = outcome(entry)
        error = entry["error"] or {}
        status = entry["status"] or ("not_submitted" if entry["batch"] is None else "pending")
        if result == "failed" and status == "succeeded":
            status = "not_downloaded"
        done = result == "succeeded"
        rows.append(
            [
                name,
                entry["job_id"] or "",
                status,
                error.get("code") or "",
                error.get("message") or "",
                output_name(name, extension) if done else "",
                *_quality_cells(entry.get("quality") if done else None),
            ]
        )
    return rows


def report_text(rows: list[list[str]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    writer.writerows(rows)
    return text.getvalue()


def review_line(rows: list[list[str]], report: str) -> str | None:
    """The closing "37 of 1,000 cutouts need a look" line: the downloaded cutouts whose
    job the service marked ``review`` (a score below the workers' ``CUTOUT_REVIEW_BELOW``;
    ``GET /v1/info`` shows the API's own setting, which may differ, so no number is
    claimed); None when no job had a score."""
    review = REPORT_COLUMNS.index("review")
    marks = [row[review] for row in rows if row[2] == "succeeded" and row[5]]
    scored = [mark for mark in marks if mark]
    if not scored:
        return None
    count = scored.count("true")
    if not count:
        return (
            f"none of the {len(marks):,} cutouts needs a look (no score below the "
            f"service's review threshold): scores in {report}"
        )
    noun = "cutout needs" if len(marks) == 1 else "cutouts need"
    return (
        f"{count:,} of {len(marks):,} {noun} a look (score below the service's review "
        f"threshold, CUTOUT_REVIEW_BELOW): see {report}"
    )
