"""The ``cutout`` subcommands, one module each; what several share is here."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.contract.settings import Settings


def folder_path(text: str) -> Path:
    """An argparse type: a folder, existing or to be made (not an existing file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return path


def add_service_flags(parser: argparse.ArgumentParser) -> None:
    """``--api`` and ``--api-key`` of a command that talks to a running service (submit,
    corrections export, models push): CUTOUT_API_URL and CUTOUT_API_KEY by default."""
    from cutout.submit.common import DEFAULT_API

    parser.add_argument(
        "--api",
        default=os.environ.get("CUTOUT_API_URL") or DEFAULT_API,
        metavar="URL",
        help=f"the service (default: CUTOUT_API_URL or {DEFAULT_API})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CUTOUT_API_KEY") or None,
        metavar="KEY",
        help="API key (default: CUTOUT_API_KEY)",
    )


def settings_or_exit(process: str | None = None) -> Settings:
    """This command's settings (shared/contract/settings.py); when one is wrong, or missing for
    ``process`` (``api``, ``worker``: CUTOUT_REDIS_URL), every problem is printed and the
    command exits 2 before it does anything."""
    from shared.contract.settings import SettingsError, load_settings

    try:
        return load_settings(process=process)
    except SettingsError as exc:
        print(f"cutout: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
