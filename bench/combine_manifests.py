"""One ``cutout eval``/``cutout tune`` manifest from several (paths rewritten to stay valid).

    python bench/combine_manifests.py OUT.csv IN.csv [IN.csv ...] [--exclude-like M.csv]

``--exclude-like M`` drops every row whose image file name is also an image file name in
``M`` (the generators name an item after its foreground, so this keeps a training set free
of the foregrounds a validation split uses). Used by docs/refine.md's fourth round.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

COLUMNS = ("image", "mask", "category")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("inputs", type=Path, nargs="+")
    parser.add_argument("--exclude-like", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    excluded = {Path(r["image"]).name for m in args.exclude_like for r in _rows(m)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    for manifest in args.inputs:
        base = os.path.relpath(manifest.resolve().parent, args.out.resolve().parent)
        for row in _rows(manifest):
            if Path(row["image"]).name in excluded:
                continue
            rows.append({k: row[k] if k == "category" else f"{base}/{row[k]}" for k in COLUMNS})
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(args.out, len(rows), "items")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
