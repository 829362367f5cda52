"""The evaluation manifest: a CSV with ``image``, ``mask`` and ``category`` columns.

Paths are relative to the manifest's folder (absolute paths are kept). Other columns
(``kind``, ``source``, ``license``…) are ignored.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

REQUIRED = ("image", "mask", "category")


class ManifestError(Exception):
    """The manifest cannot be used: missing, unreadable, wrong columns or missing files."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One image with its truth mask."""

    image: str  # as written in the manifest (reported)
    mask: str
    category: str
    image_path: Path
    mask_path: Path


def load_manifest(
    path: Path, *, category: str | None = None, limit: int | None = None
) -> list[Item]:
    """Read and check the manifest; every listed file must exist.

    ``category`` keeps one category, ``limit`` the first N rows (after the category
    filter). Raises ManifestError naming the problem (all missing files at once).
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise ManifestError(
                    f"{path}: missing column(s) {', '.join(missing)}; "
                    f"expected a header with {', '.join(REQUIRED)}"
                )
            rows = list(reader)
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc}") from None

    base = path.parent
    items: list[Item] = []
    problems: list[str] = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        values = {c: (row.get(c) or "").strip() for c in REQUIRED}
        empty = [c for c, v in values.items() if not v]
        if empty:
            problems.append(f"line {number}: empty {', '.join(empty)}")
            continue
        item = Item(
            image=values["image"],
            mask=values["mask"],
            category=values["category"],
            image_path=base / values["image"],
            mask_path=base / values["mask"],
        )
        for label, file in (("image", item.image_path), ("mask", item.mask_path)):
            if not file.is_file():
                problems.append(f"line {number}: {label} {values[label]} not found")
        if category is None or item.category == category:
            items.append(item)
    if problems:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise ManifestError(f"{path}:\n  " + "\n  ".join(shown))
    if not items:
        what = f" in category {category!r}" if category is not None else ""
        raise ManifestError(f"{path}: no items{what}")
    if limit is not None:
        items = items[:limit]
    return items
