"""Where the team's evaluation set is: the folder ``CUTOUT_EVAL_DIR`` names.

The set is not in the repository. It holds ``gt/`` (44 composites with exact masks and a
``manifest.csv`` in ``cutout eval``'s format), ``photos/`` (rembg's nine example photos,
each with the cutouts rembg 2.0.86 made of it: ``<name>.u2net.png``, ``<name>.u2netp.png``)
and ``real/horses/`` (119 real horse photos with human masks and a ``manifest.csv``).
A benchmark that needs it and does not find it stops with a message saying what to set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "CUTOUT_EVAL_DIR"


def eval_dir() -> Path | None:
    """The folder ``CUTOUT_EVAL_DIR`` names, or None when it is unset or empty."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else None


def find(part: str) -> Path | None:
    """``part`` (``gt``, ``photos``, ``real/horses``) of the set when it is there, else None."""
    root = eval_dir()
    return root / part if root is not None and (root / part).exists() else None


def need(part: str) -> Path:
    """``part`` of the set; exits with what to set (status 1) when it is not there."""
    found = find(part)
    if found is not None:
        return found
    root = eval_dir()
    where = f"{ENV}={root} has no {part}/" if root else f"{ENV} is not set"
    sys.exit(
        f"{where}: this benchmark needs the team's evaluation set (not in the repository). "
        f"Set {ENV} to its folder (the one holding gt/, photos/ and real/horses/), "
        f"e.g. {ENV}=/path/to/eval python {Path(sys.argv[0]).as_posix()}; see bench/README.md"
    )
