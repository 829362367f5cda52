"""Following the batches until every job is terminal, downloading each result."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cutout.submit.common import PAGE, POLL_MAX, POLL_MIN, TERMINAL, error_message, output_name
from cutout.submit.context import Context
from cutout.submit.progress import Progress


class Follow:
    """Poll the batches, record terminal jobs, download results."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _open(self, seq: int) -> list[str]:
        """Inputs of batch ``seq`` that still belong to it and are not terminal yet."""
        ctx = self.ctx
        return [
            name
            for name in ctx.state.batches[seq]["files"]
            if ctx.state.files[name]["batch"] == seq
            and ctx.state.files[name]["status"] not in (*TERMINAL, "expired")
        ]

    def follow(self) -> None:
        ctx = self.ctx
        state = ctx.state
        files = state.files
        total = len(files)
        ctx.progress = Progress("results", total, ctx.processed_before, ctx.args.quiet)
        # results that finished earlier but were not downloaded (or not recorded as such)
        for name, entry in sorted(files.items()):
            if entry["status"] == "succeeded" and not entry["downloaded"]:
                self._download(name)
        active = [
            seq for seq, record in enumerate(state.batches) if record["id"] and self._open(seq)
        ]
        marks: dict[int, tuple[str | None, int]] = {}
        seen_terminal: dict[int, int] = {}
        delay = POLL_MIN
        while True:
            changed = False
            for seq in list(active):
                record = state.batches[seq]
                batch = self._get_batch(seq)
                if batch is None:
                    active.remove(seq)
                    changed = True
                    continue
                counts = batch.get("counts") or {}
                terminal = sum(int(counts.get(k) or 0) for k in TERMINAL)
                completed = batch.get("status") == "completed"
                if terminal != seen_terminal.get(seq) or completed:
                    reached_end = self._scan(seq, record["id"], marks)
                    seen_terminal[seq] = terminal
                    changed = True
                    if completed and reached_end:
                        self._vanished(seq)
                if not self._open(seq):
                    active.remove(seq)
            self._reap()
            ctx.show()
            state.flush()  # so that a kill loses at most one round
            if not active and not ctx.futures:
                break
            delay = POLL_MIN if changed else min(POLL_MAX, delay * 1.5)
            time.sleep(delay if active else 0.1)
        ctx.progress.close(ctx.counts_text())
        ctx.progress = None
        state.flush()

    def _get_batch(self, seq: int) -> dict[str, Any] | None:
        """The batch object; None (and its open files marked ``expired``) if it is gone."""
        from cutout.client import ApiError

        ctx = self.ctx
        record = ctx.state.batches[seq]
        try:
            return ctx.client.get_batch(record["id"])
        except ApiError as exc:
            if exc.status != 404:
                raise
        open_names = self._open(seq)
        message = (
            f"batch {record['id']} is no longer on the server (batches and results are "
            "kept for the service's CUTOUT_RETENTION, 7 days by default)"
        )
        with ctx.state.lock:
            for name in open_names:
                ctx.state.files[name].update(
                    status="expired", error={"code": "batch_expired", "message": message}
                )
            ctx.state.save()
        ctx.say(
            f"{message}: {len(open_names)} image(s) had not finished; "
            "run again with --retry-failed to submit them anew"
        )
        return None

    def _scan(self, seq: int, batch_id: str, marks: dict[int, tuple[str | None, int]]) -> bool:
        """Record the batch's newly terminal jobs; True when the listing's end was reached.

        Pages are filtered to terminal jobs. ``marks[seq]`` (cursor, item index) skips the
        leading items already known terminal: a full page whose items are exactly the
        next ``PAGE`` indexes moves it on.
        """
        cursor, expect = marks.get(seq, (None, 0))
        contiguous = True
        while True:
            jobs, next_cursor = self.ctx.client.batch_jobs(
                batch_id, status=",".join(TERMINAL), cursor=cursor, limit=PAGE
            )
            for job in jobs:
                self._record(seq, job)
            indexes = [job.get("item_index") for job in jobs]
            if contiguous and len(jobs) == PAGE and indexes == list(range(expect, expect + PAGE)):
                expect += PAGE
                if next_cursor:
                    marks[seq] = (next_cursor, expect)
            else:
                contiguous = False
            if not next_cursor:
                return True
            if not self._open(seq):
                return False
            cursor = next_cursor

    def _record(self, seq: int, job: dict[str, Any]) -> None:
        ctx = self.ctx
        record = ctx.state.batches[seq]
        index = job.get("item_index")
        name = None
        if isinstance(index, int) and 0 <= index < len(record["files"]):
            name = record["files"][index]
        meta_name = (job.get("metadata") or {}).get("file")
        if name is None or (meta_name is not None and meta_name != name):
            name = meta_name if meta_name in ctx.state.files else None
        if name is None:
            return
        with ctx.state.lock:
            entry = ctx.state.files[name]
            if entry["batch"] != seq or entry["status"] in TERMINAL:
                return  # re-submitted since, or known
            result = job.get("result") or {}
            entry.update(
                job_id=job["id"],
                status=job["status"],
                error=job.get("error"),
                bytes=result.get("bytes"),
                quality=result.get("quality"),
            )
            ctx.state.touch()
        if job["status"] == "succeeded":
            self._download(name)

    def _vanished(self, seq: int) -> None:
        """A completed batch whose listing ended without some items: their jobs are gone."""
        ctx = self.ctx
        with ctx.state.lock:
            for name in self._open(seq):
                ctx.state.files[name].update(
                    status="failed",
                    error={"code": "not_found", "message": "the server no longer has this job"},
                )
            ctx.state.touch()

    def _download(self, name: str) -> None:
        ctx = self.ctx
        entry = ctx.state.files[name]
        target = ctx.out / output_name(name, ctx.options.extension)
        # written whole and renamed, so a file of the right size is the result itself:
        # a run killed after the rename but before saving the state does not fetch it again
        if entry["bytes"] and target.is_file() and target.stat().st_size == entry["bytes"]:
            with ctx.state.lock:
                entry.update(downloaded=True, error=None)
                ctx.state.touch()
            return
        ctx.futures.add(ctx.pool.submit(self._fetch, name, entry["job_id"], target))

    def _fetch(self, name: str, job_id: str, target: Path) -> None:
        from cutout.client import ClientError

        ctx = self.ctx
        try:
            ctx.client.download_result(job_id, target)
        except (ClientError, OSError) as exc:
            code = getattr(exc, "code", "write_error")
            with ctx.state.lock:
                ctx.state.files[name]["error"] = {
                    "code": code,
                    "message": f"download failed: {error_message(exc)}",
                }
                ctx.state.touch()
            return
        with ctx.state.lock:
            ctx.state.files[name].update(downloaded=True, error=None)
            ctx.state.touch()

    def _reap(self) -> None:
        for future in [f for f in self.ctx.futures if f.done()]:
            self.ctx.futures.discard(future)
            future.result()  # _fetch records its own errors; anything else is a bug
