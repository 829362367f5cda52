"""The ``cutout`` subcommands, one module each; what several share is here."""

from __future__ import annotations

import argparse
from pathlib import Path


def folder_path(text: str) -> Path:
    """An argparse type: a folder, existing or to be made (not an existing file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return path
