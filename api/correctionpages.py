"""Reading the tenant's index of corrected jobs a page at a time (``GET /v1/corrections``).

The index (shared/stores/corrections.py) is a sorted set, job id → when its latest
correction finished (Redis's clock, each entry after the newest), so listing oldest
first with a cursor that names the last listed entry (its time and job id) is stable:
a correction finished while a client pages lands after everything already passed
(never a gap, never a repeat), and a job corrected again moves to its new place, so it
is listed again there with its new version. A member whose job is gone (expired,
or its record removed) is skipped and pruned once the page is read.

A cursor is opaque to clients: base64 of ``c<time>|<job id>``. The query's parameters
are checked here; each bad one is ``400 invalid_request`` naming it.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.batches.pages import limit_arg
from shared.contract.shapes.records import JobRecord
from shared.errors import InvalidRequest
from shared.ids import valid_id
from shared.redis.errors import redis_errors
from shared.stores.corrections import CorrectionRecords, corrected_key

STEP = 500  # index entries (and job records) read at a time
SCAN_MAX = 5000  # entries one page may look at (a batch filter skips others' jobs)


@dataclass(frozen=True)
class Cursor:
    """The last entry a page listed or looked at: the next page starts after it."""

    at: float
    job_id: str

    def encode(self) -> str:
        text = f"c{self.at!r}|{self.job_id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        bad = InvalidRequest("`cursor` is not a cursor this API gave out", field="cursor")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise bad from None
        at, _, job_id = raw[1:].partition("|")
        try:
            when = float(at)
        except ValueError:
            raise bad from None
        if not raw.startswith("c") or not math.isfinite(when) or not valid_id(job_id, "job"):
            raise bad
        return cls(when, job_id)


@dataclass(frozen=True)
class Query:
    limit: int
    since: float
    batch_id: str | None
    cursor: Cursor | None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Query:
        batch_id = args.get("batch_id") or None
        if batch_id is not None and not valid_id(batch_id, "bat"):
            raise InvalidRequest("`batch_id` is not a batch id (bat_…)", field="batch_id")
        cursor = args.get("cursor")
        return cls(
            limit=limit_arg(args),
            since=since_arg(args.get("since")),
            batch_id=batch_id,
            cursor=Cursor.decode(cursor) if cursor else None,
        )


def since_arg(raw: str | None) -> float:
    """``?since=``: an RFC 3339 date and time with its offset → epoch seconds (0: all)."""
    if raw is None or raw == "":
        return 0.0
    text = raw.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or "T" not in text.upper():
        raise InvalidRequest(
            "`since` must be an RFC 3339 date and time with its offset, such as "
            f"2026-12-01T00:00:00Z (got {raw[:40]!r})",
            field="since",
        )
    return when.timestamp()


def iso(at: float) -> str:
    """Epoch seconds → RFC 3339 with microseconds and a ``Z`` (``since`` takes it back)."""
    text = datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


Entry = tuple[str, float, "JobRecord | None"]  # job id, corrected at, the job or None


def entries(
    records: CorrectionRecords, store: Any, tenant: str, query: Query, step: int
) -> Iterator[Entry]:
    """The index's entries after the query's start, oldest first, each with its job
    record (None when the job is gone), read ``step`` at a time."""
    low = max(query.since, query.cursor.at) if query.cursor else query.since
    offset = 0  # entries at time ``low`` already read
    while True:
        rows = records.corrected(tenant, low, offset, step)
        fresh = [(job_id, at) for job_id, at in rows if not _passed(query.cursor, job_id, at)]
        jobs = store.get_jobs([job_id for job_id, _ in fresh])
        for (job_id, at), job in zip(fresh, jobs, strict=True):
            yield job_id, at, job
        if len(rows) < step:
            return
        last = rows[-1][1]
        offset = offset + len(rows) if last == low else sum(1 for _, at in rows if at == last)
        low = last


def _passed(cursor: Cursor | None, job_id: str, at: float) -> bool:
    if cursor is None:
        return False
    return at < cursor.at or (at == cursor.at and job_id <= cursor.job_id)


def prune(records: CorrectionRecords, tenant: str, job_ids: list[str]) -> None:
    """Drop the entries of jobs that are gone (their records expired or were removed)."""
    if job_ids:
        with redis_errors():
            records.r.zrem(corrected_key(tenant), *job_ids)
