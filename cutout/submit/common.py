"""What the parts of ``cutout submit`` share: names, limits, errors, entry helpers.

The command is split by concern: :mod:`cutout.commands.submit` (arguments and exit
codes), :mod:`.state` (the resumable ``OUT/.cutout-submit.json``), :mod:`.progress`
(the progress line), :mod:`.uploads` (signed uploads and batch creation), :mod:`.follow`
(following the batches, downloading results) and :mod:`.run` (planning and the report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROG = "cutout submit"
STATE_NAME = ".cutout-submit.json"
LOCK_NAME = ".cutout-submit.lock"
REPORT_NAME = "report.csv"
STATE_VERSION = 1
DEFAULT_API = "http://127.0.0.1:8080"
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jfif": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
TERMINAL = ("succeeded", "failed", "canceled")
FAILED = ("failed", "canceled", "expired")
UPLOAD_SLOTS = 100  # POST /v1/uploads gives at most 100 slots per call
MAX_ITEMS = 10_000  # items per batch (the server's default CUTOUT_MAX_BATCH_ITEMS)
PAGE = 200  # jobs per page when listing a batch
SAVE_INTERVAL = 0.2  # seconds between state writes for per-file progress
POLL_MIN, POLL_MAX = 0.3, 2.0  # seconds between polls of a batch
REPORT_COLUMNS = (
    *("file", "job_id", "status", "error_code", "error_message", "output_file"),
    *("score", "review", "flags"),  # the job's result.quality (docs/quality.md)
)


class UsageError(Exception):
    """Exit 2."""


class SubmitError(Exception):
    """Exit 1, with a message for the user."""


def error_message(exc: Exception) -> str:
    from cutout.client import ApiError

    if isinstance(exc, ApiError) and exc.status == 401:
        return f"{exc.message} (give the key with --api-key or CUTOUT_API_KEY)"
    return str(getattr(exc, "message", None) or exc)


def outcome(entry: dict[str, Any]) -> str:
    """``succeeded`` (result downloaded), ``failed`` (for the report), or ``pending``."""
    if entry["status"] == "succeeded" and entry["downloaded"]:
        return "succeeded"
    if entry["status"] in FAILED or entry["error"]:
        return "failed"
    return "pending"


def output_name(name: str, extension: str) -> str:
    """``sub/photo.jpg`` → ``sub/photo.<extension>`` (like ``cutout remove``)."""
    path = Path(name)
    return (path.parent / f"{path.stem}.{extension}").as_posix()


def new_entry() -> dict[str, Any]:
    return {
        "upload_key": None,
        "batch": None,  # index into state["batches"]
        "job_id": None,
        "status": None,  # the job's status once terminal, or "expired"
        "error": None,  # the job's error, or one of ours (upload, download, expiry)
        "bytes": None,  # size of the result, from the job object
        "quality": None,  # the job's result.quality: score, flags, review, level
        "downloaded": False,
    }
