"""`results.zip`: every succeeded result of a batch and `manifest.csv`, streamed.

Python's zipfile writes into a sink that the response generator drains after every
chunk, each result streamed from storage, so neither the zip nor any result is held
whole in memory.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from shared.contract.options import EXTENSIONS
from shared.contract.shapes.records import BatchRecord, JobRecord
from shared.errors import NotFound, StorageError
from shared.ids import now_iso
from shared.stores.jobstore import JobStore

ZIP_CHUNK = 1 << 16
_UNSAFE_NAME = re.compile(r"[^\w.-]+")


class _Sink(io.RawIOBase):
    """A write-only, non-seekable file that hands its bytes to the response generator."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def entry_name(job: JobRecord, extension: str, used: set[str]) -> str:
    """The result's file name in the zip, unique (case-insensitively) within it.

    From the item's metadata ``name`` or ``filename`` (or a multipart file's name):
    its stem, reduced to letters, digits, ``.``, ``_``, ``-``, with the result's
    extension; otherwise ``<item index:05d>_<job id>.<ext>``.
    """
    index = job.item_index or 0
    metadata = job.metadata or {}
    raw = metadata.get("name") or metadata.get("filename") or (job.source or {}).get("filename")
    stem = ""
    if isinstance(raw, str):
        base = raw.replace("\\", "/").rsplit("/", 1)[-1]
        if "." in base.strip("."):
            base = base.rsplit(".", 1)[0]
        stem = _UNSAFE_NAME.sub("_", base).strip("._-")[:120]
    default = f"{index:05d}_{job.id}"
    candidates = [f"{stem}.{extension}", f"{stem}_{index:05d}.{extension}"] if stem else []
    candidates.append(f"{default}.{extension}")
    for name in candidates:
        if name.lower() not in used and name.lower() != "manifest.csv":
            used.add(name.lower())
            return name
    used.add(f"{default}.{extension}".lower())
    return f"{default}.{extension}"


def _zip_time(stamp: str | None) -> tuple[int, int, int, int, int, int]:
    try:
        moment = datetime.fromisoformat((stamp or "").replace("Z", "+00:00"))
    except ValueError:
        moment = datetime.now()
    return (max(1980, moment.year), moment.month, moment.day, moment.hour, moment.minute,
            moment.second)  # fmt: skip


MANIFEST_COLUMNS = (
    "item_index",
    "job_id",
    "status",
    "error_code",
    "error_message",
    "file",
    "metadata",
    # result.quality (docs/quality.md): empty for a job without a score
    "score",
    "review",
    "flags",
    # result.version: the version in the zip (the newest; above 1 after corrected masks)
    "version",
)


def quality_cells(job: JobRecord) -> list[str]:
    """``score``, ``review`` (``true``/``false``) and ``flags`` (codes separated by spaces)
    of a succeeded job's ``result.quality``; three empty cells for any other job."""
    quality = (job.result or {}).get("quality") if job.status == "succeeded" else None
    if not isinstance(quality, dict):
        return ["", "", ""]
    review = "true" if quality.get("review") else "false"
    return [str(quality.get("score", "")), review, " ".join(quality.get("flags") or ())]


def _version_cell(job: JobRecord) -> str:
    result = job.result or {}
    return str(result.get("version") or 1) if job.status == "succeeded" else ""


def stream_zip(store: JobStore, storage: Any, batch: BatchRecord) -> Iterator[bytes]:
    """The zip of every succeeded result of ``batch`` and ``manifest.csv``, in chunks."""
    sink = _Sink()
    rows: list[list[Any]] = []
    used: set[str] = set()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for job in store.iter_batch_jobs(batch.id):
            if job.tenant != batch.tenant:
                continue
            error = job.error or {}
            row = [
                job.item_index,
                job.id,
                job.status,
                error.get("code") or "",
                error.get("message") or "",
                "",
                json.dumps(job.metadata or {}, separators=(",", ":"), ensure_ascii=False),
                *quality_cells(job),
                _version_cell(job),
            ]
            rows.append(row)
            result = job.result or {}
            if job.status != "succeeded" or not result.get("key"):
                continue
            chunks = storage.stream(result["key"], ZIP_CHUNK)
            try:
                first = next(chunks, b"")
            except (NotFound, StorageError) as exc:
                # deleted by its owner, or storage trouble: say so instead of failing the zip
                row[3] = exc.code
                row[4] = "the result could not be read from storage"
                continue
            fmt = (job.options or {}).get("format", "")
            extension = EXTENSIONS.get(fmt) or result["key"].rsplit(".", 1)[-1]
            name = entry_name(job, extension, used)
            info = zipfile.ZipInfo(name, _zip_time(job.finished_at))
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = int(result.get("bytes") or 0)
            with archive.open(info, mode="w") as entry:
                entry.write(first)
                yield sink.drain()
                for chunk in chunks:
                    entry.write(chunk)
                    yield sink.drain()
            row[5] = name
            yield sink.drain()
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        rows.sort(key=lambda r: r[0] if r[0] is not None else -1)
        writer.writerows(rows)
        info = zipfile.ZipInfo("manifest.csv", _zip_time(now_iso()))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, text.getvalue().encode("utf-8"))
    yield sink.drain()
