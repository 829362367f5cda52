"""``GET /v1/batches/{id}/jobs``: the batch's jobs a page at a time, in item order or
worst score first.

A cursor is opaque to clients. In item order it is the item offset the next page starts
at (base64 of ``o<offset>``); in score order (``order=score``) it is the last job the page
listed (base64 of ``s<job id>``), so the next page starts right after that job's place in
the score order even when jobs scored meanwhile entered it ahead (a job's score never
changes once set). A cursor is only good with the order it came from: another order
refuses it (``invalid_request`` naming ``cursor``). With a filter (``status``,
``review``) a page may hold fewer than ``limit`` jobs: one page looks at no more than
``SCAN_MAX`` records before it answers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.contract.shapes import STATUSES, public_job
from shared.contract.shapes.records import BatchRecord, JobRecord
from shared.errors import InvalidRequest
from shared.ids import valid_id
from shared.stores.jobstore import JobStore

PAGE_DEFAULT = 100
PAGE_MAX = 1000
SCAN_MAX = 5000  # records one filtered page may look at before it answers
STEP = 500  # ids read at a time by a filtered page
#: ``?order=``: item order (the default) or the quality score's, worst first
ORDERS = ("item", "score")
_PREFIX = {"item": "o", "score": "s"}
_TRUE = ("true", "1")
_FALSE = ("false", "0")


def _bad_cursor() -> InvalidRequest:
    return InvalidRequest("`cursor` is not a cursor this API gave out", field="cursor")


def _pack(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def encode_cursor(offset: int) -> str:
    """An item-order cursor: the next page starts at item ``offset``."""
    return _pack(f"o{offset}")


def encode_score_cursor(job_id: str) -> str:
    """A score-order cursor: the next page starts after ``job_id``."""
    return _pack(f"s{job_id}")


def _unpack(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise _bad_cursor() from None


def _check_order(text: str, order: str) -> None:
    """A cursor of the other order is refused by name (it would start anywhere)."""
    for name, prefix in _PREFIX.items():
        if name != order and text.startswith(prefix):
            raise InvalidRequest(
                f"`cursor` comes from a listing with order={name}; send it with "
                f"order={name}, or start again without a cursor",
                field="cursor",
            )


def decode_cursor(cursor: str) -> int:
    """An item-order cursor from :func:`encode_cursor`; InvalidRequest for anything
    else."""
    text = _unpack(cursor)
    _check_order(text, "item")
    if not text.startswith("o"):
        raise _bad_cursor()
    try:
        offset = int(text[1:])
    except ValueError:
        raise _bad_cursor() from None
    if offset < 0:
        raise _bad_cursor()
    return offset


def decode_score_cursor(cursor: str) -> str:
    """The job id of a score-order cursor from :func:`encode_score_cursor`."""
    text = _unpack(cursor)
    _check_order(text, "score")
    if not text.startswith("s") or not valid_id(text[1:], "job"):
        raise _bad_cursor()
    return text[1:]


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


def review_arg(args: Mapping[str, str]) -> bool | None:
    """``?review=``: true (the jobs whose quality score is below the review threshold),
    false (the scored jobs above it), absent (no filter); InvalidRequest otherwise."""
    raw = args.get("review")
    if raw is None or raw == "":
        return None
    value = raw.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise InvalidRequest(f"`review` must be true or false, got {raw!r}", field="review")


def order_arg(args: Mapping[str, str]) -> str:
    """``?order=``: ``item`` (the default) or ``score``; InvalidRequest otherwise."""
    raw = args.get("order")
    if raw is None or raw == "":
        return "item"
    if raw.strip().lower() not in ORDERS:
        raise InvalidRequest(
            f"`order` must be one of {', '.join(ORDERS)}, got {raw!r}", field="order"
        )
    return raw.strip().lower()


@dataclass(frozen=True)
class Query:
    """What one listing asks for (the query string, checked)."""

    limit: int
    status: set[str] | None
    review: bool | None
    order: str
    cursor: str | None

    @classmethod
    def of(cls, args: Mapping[str, str]) -> Query:
        return cls(
            limit_arg(args), status_arg(args), review_arg(args), order_arg(args),
            args.get("cursor") or None,
        )  # fmt: skip

    @property
    def filtered(self) -> bool:
        return self.status is not None or self.review is not None

    def matches(self, job: JobRecord) -> bool:
        if self.status is not None and job.status not in self.status:
            return False
        if self.review is None:
            return True
        quality = (job.result or {}).get("quality")
        return isinstance(quality, dict) and bool(quality.get("review")) is self.review


def _records(
    store: JobStore, batch: BatchRecord, ids: list[str]
) -> Iterator[tuple[str, JobRecord | None]]:
    """``ids`` with their records; None for a job gone or not the batch's tenant's."""
    for job_id, job in zip(ids, store.get_jobs(ids), strict=True):
        if job is not None and job.tenant != batch.tenant:
            job = None
        yield job_id, job


def _item_page(store: JobStore, batch: BatchRecord, query: Query) -> dict[str, Any]:
    offset = decode_cursor(query.cursor) if query.cursor else 0
    total = (batch.counts or {}).get("total", 0)
    found: list[dict[str, Any]] = []
    scanned = 0
    while offset < total and len(found) < query.limit and scanned < SCAN_MAX:
        # unfiltered, exactly the rest of the page; filtered, bigger steps
        want = query.limit - len(found)
        step = min(SCAN_MAX - scanned, STEP) if query.filtered else want
        ids = store.batch_job_ids(batch.id, offset, offset + step - 1)
        if not ids:
            break
        for _, job in _records(store, batch, ids):
            offset += 1
            scanned += 1
            if job is not None and query.matches(job):
                found.append(public_job(job))
                if len(found) == query.limit:
                    break
    next_cursor = encode_cursor(offset) if offset < total else None
    return {"items": found, "next_cursor": next_cursor}


def _score_page(store: JobStore, batch: BatchRecord, query: Query) -> dict[str, Any]:
    """Scored succeeded jobs, worst first (``store.batch_scored_ids``), filtered too."""
    start = 0
    if query.cursor:
        rank = store.batch_score_rank(batch.id, decode_score_cursor(query.cursor))
        if rank is None:  # a job id that never was in this batch's score order
            raise InvalidRequest(
                "`cursor` names no job of this batch's order=score listing (a cursor from "
                "another batch?); start again without a cursor",
                field="cursor",
            )
        start = rank + 1
    found: list[dict[str, Any]] = []
    scanned = 0
    last: str | None = None
    more = True
    while more and len(found) < query.limit and scanned < SCAN_MAX:
        want = query.limit - len(found)
        step = min(SCAN_MAX - scanned, STEP) if query.filtered else want
        # one id past the step: whether anything follows what this page takes
        ids = store.batch_scored_ids(batch.id, start, start + step)
        taken = 0
        for job_id, job in _records(store, batch, ids[:step]):
            taken += 1
            scanned += 1
            last = job_id
            if job is not None and query.matches(job):
                found.append(public_job(job))
                if len(found) == query.limit:
                    break
        start += taken
        more = len(ids) > taken
    next_cursor = encode_score_cursor(last) if more and last is not None else None
    return {"items": found, "next_cursor": next_cursor}


def page(store: JobStore, batch: BatchRecord, args: Mapping[str, str]) -> dict[str, Any]:
    """The page of ``batch``'s jobs that ``args`` (limit, status, review, order, cursor)
    asks for, as the public :class:`shared.contract.shapes.records.JobPage`."""
    query = Query.of(args)
    if query.order == "score":
        return _score_page(store, batch, query)
    return _item_page(store, batch, query)
