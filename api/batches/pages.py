"""``GET /v1/batches/{id}/jobs``: the batch's jobs in item order, a page at a time.

A cursor is the item offset the next page starts at, opaque to clients (base64 of
``o<offset>``). With a status filter a page may hold fewer than ``limit`` jobs: one page
looks at no more than ``SCAN_MAX`` records before it answers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from shared.errors import InvalidRequest
from shared.shapes import STATUSES, public_job

PAGE_DEFAULT = 100
PAGE_MAX = 1000
SCAN_MAX = 5000  # records one filtered page may look at before it answers


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """A cursor from :func:`encode_cursor`; InvalidRequest for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not text.startswith("o"):
            raise ValueError
        offset = int(text[1:])
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidRequest("`cursor` is not a cursor this API gave out", field="cursor") from None
    if offset < 0:
        raise InvalidRequest("`cursor` is not a cursor this API gave out", field="cursor")
    return offset


def limit_arg(args: Mapping[str, str]) -> int:
    """``?limit=``: 1 to PAGE_MAX, PAGE_DEFAULT when absent; InvalidRequest otherwise."""
    raw = args.get("limit")
    if raw is None or raw == "":
        return PAGE_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest("`limit` must be an integer", field="limit") from None
    if not 1 <= value <= PAGE_MAX:
        raise InvalidRequest(f"`limit` must be between 1 and {PAGE_MAX}", field="limit")
    return value


def status_arg(args: Mapping[str, str]) -> set[str] | None:
    """``?status=``: job statuses separated by commas (None: all); InvalidRequest for an
    unknown one."""
    raw = args.get("status")
    if not raw:
        return None
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        raise InvalidRequest(
            f"unknown status {', '.join(unknown)}; expected some of {', '.join(STATUSES)}",
            field="status",
        )
    return wanted


def page(store: Any, batch: Mapping[str, Any], args: Mapping[str, str]) -> dict[str, Any]:
    """The page of ``batch``'s jobs that ``args`` (limit, status, cursor) asks for, as
    the public :class:`shared.shapes.records.JobPage`."""
    limit = limit_arg(args)
    wanted = status_arg(args)
    offset = decode_cursor(args["cursor"]) if args.get("cursor") else 0
    total = batch["counts"]["total"]
    found: list[dict[str, Any]] = []
    scanned = 0
    while offset < total and len(found) < limit and scanned < SCAN_MAX:
        # unfiltered, exactly the rest of the page; filtered, bigger steps
        step = limit - len(found) if wanted is None else min(SCAN_MAX - scanned, 500)
        ids = store.batch_job_ids(batch["id"], offset, offset + step - 1)
        if not ids:
            break
        for job in store.get_jobs(ids):
            offset += 1
            scanned += 1
            if job is None or job.get("tenant") != batch.get("tenant"):
                continue
            if wanted is None or job["status"] in wanted:
                found.append(public_job(job))
                if len(found) == limit:
                    break
    next_cursor = encode_cursor(offset) if offset < total else None
    return {"items": found, "next_cursor": next_cursor}
