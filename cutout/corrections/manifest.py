"""The export's ``manifest.csv``: ``cutout eval``'s format (``image``, ``mask``,
``category``; paths relative to the manifest's folder), which ``cutout tune --manifest``
takes as it is, plus columns those commands ignore and the export reads back to resume:
``job_id``, ``batch_id``, ``version``, ``corrected_at`` and ``metadata`` (JSON).

One row per job (its newest correction), oldest correction first.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from shared.atomicfile import atomic_write

NAME = "manifest.csv"
COLUMNS = ("image", "mask", "category", "job_id", "batch_id", "version", "corrected_at")
COLUMNS_ALL = (*COLUMNS, "metadata")


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """The rows of an earlier export, by job id (none when there is no manifest yet)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return {}
    return {row["job_id"]: row for row in rows if row.get("job_id")}


def row_for(item: dict[str, Any], image: str, mask: str, category: str) -> dict[str, str]:
    """The manifest row of a listed correction whose files are ``image`` and ``mask``."""
    metadata = item.get("metadata") or {}
    named = metadata.get("category") if isinstance(metadata, dict) else None
    return {
        "image": image,
        "mask": mask,
        "category": named.strip() if isinstance(named, str) and named.strip() else category,
        "job_id": str(item["job_id"]),
        "batch_id": str(item.get("batch_id") or ""),
        "version": str(item["version"]),
        "corrected_at": str(item["corrected_at"]),
        "metadata": json.dumps(metadata, separators=(",", ":"), ensure_ascii=False),
    }


def write_rows(path: Path, rows: dict[str, dict[str, str]]) -> None:
    """Write every row, oldest correction first, in one atomic replace."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS_ALL, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows.values(), key=lambda r: (r.get("corrected_at", ""), r["job_id"])):
        writer.writerow(row)
    text = out.getvalue()
    try:
        if path.read_text(encoding="utf-8") == text:
            return  # unchanged: a re-run that found nothing new touches nothing
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    atomic_write(path, text)
