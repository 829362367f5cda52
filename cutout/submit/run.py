"""A whole ``cutout submit`` run: plan, upload, create, follow, download, report.

:class:`Submit` holds the run's :class:`~cutout.submit.context.Context` and its two parts,
:class:`~cutout.submit.uploads.Uploads` and :class:`~cutout.submit.follow.Follow`, each
given the same context."""

from __future__ import annotations

import argparse
import contextlib
import glob
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cutout.submit.common import (
    MAX_ITEMS,
    PROG,
    REPORT_NAME,
    UsageError,
    new_entry,
    outcome,
    output_name,
)
from cutout.submit.context import Context
from cutout.submit.follow import Follow
from cutout.submit.report import report_rows, report_text, review_line
from cutout.submit.uploads import Uploads
from shared.atomicfile import atomic_write

if TYPE_CHECKING:
    from cutout.client import ApiClient
    from cutout.submit.state import State


class Submit:
    """Plan, upload, create the batch, follow it and download, report."""

    def __init__(
        self,
        args: argparse.Namespace,
        client: ApiClient,
        state: State,
        source: Path,
        out: Path,
    ) -> None:
        self.ctx = ctx = Context(args, client, state, source, out)
        self.uploads = Uploads(ctx)
        self.results = Follow(ctx)

    # -- planning -------------------------------------------------------------------

    def plan(self, names: list[str]) -> None:
        """Add new files to the state, reset failures for --retry-failed; usage checks."""
        ctx = self.ctx
        files = ctx.state.files
        ctx.present = set(names)
        if not names and not files:
            raise UsageError(f"no image files in {ctx.args.dir}")
        seen: dict[str, str] = {}
        for name in sorted(set(names) | set(files)):
            target = output_name(name, ctx.options.extension).lower()
            if target in seen:
                raise UsageError(
                    f"{seen[target]} and {name} would both write "
                    f"{ctx.out / output_name(name, ctx.options.extension)}"
                )
            seen[target] = name
        for name in names:
            files.setdefault(name, new_entry())
        if ctx.args.retry_failed:
            again = [n for n, e in files.items() if outcome(e) == "failed" and n in ctx.present]
            for name in again:
                files[name] = new_entry()
            if again:
                ctx.say(f"submitting {len(again)} failed image(s) again")
        for name, entry in files.items():
            if name not in ctx.present and entry["batch"] is None:
                entry["error"] = {"code": "missing", "message": "the file is no longer in DIR"}
        ctx.processed_before = sum(1 for e in files.values() if outcome(e) != "pending")
        # a batch already created is a resume, even when a SIGKILL came before the state
        # recorded any download (the files on disk are recognised by their size later)
        if ctx.processed_before or ctx.state.batches:
            done = sum(1 for e in files.values() if outcome(e) == "succeeded")
            ctx.say(f"resuming: {done} of {len(files)} results already downloaded")
            self._remove_stale_parts()
        ctx.state.save()

    def _remove_stale_parts(self) -> None:
        """Delete the temporary files a killed run left mid-write (a download, the state,
        the report: ``.<name>.<random>.part`` beside each, shared/atomicfile.py); only
        ours, so nothing a user keeps in OUT is touched."""
        ctx = self.ctx
        targets = [ctx.out / output_name(n, ctx.options.extension) for n in ctx.state.files]
        targets += [ctx.state.path, ctx.out / REPORT_NAME]
        for target in targets:
            for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
                with contextlib.suppress(OSError):
                    stale.unlink()

    # -- the whole run --------------------------------------------------------------

    def execute(self) -> int:
        ctx = self.ctx
        state = ctx.state
        # a batch whose POST was sent but whose answer was never saved: ask again, same key
        for seq, record in enumerate(state.batches):
            if record["id"] is None and record["files"]:
                self.uploads.create(seq)
        todo = [
            name
            for name, entry in sorted(state.files.items())
            # never submitted (new, or its upload failed): not a re-submission
            if entry["batch"] is None and name in ctx.present and entry["status"] is None
        ]
        if todo:
            # uploads of an interrupted run stay in storage: send only the others
            self.uploads.upload([n for n in todo if not state.files[n]["upload_key"]])
            ready = [n for n in todo if state.files[n]["upload_key"]]
            for start in range(0, len(ready), MAX_ITEMS):
                chunk = ready[start : start + MAX_ITEMS]
                with state.lock:
                    seq = len(state.batches)
                    state.batches.append(
                        {
                            "id": None,
                            "key": f"cutout-submit.{state.data['run']}.{seq}",
                            "files": chunk,
                            "webhook_url": ctx.args.webhook_url,
                        }
                    )
                    for name in chunk:
                        state.files[name]["batch"] = seq
                    state.save()  # before the request: the key must survive a crash
                self.uploads.create(seq)
        self.results.follow()
        return self._finish()

    def interrupted(self) -> None:
        self.stop()
        print(
            f"\n{PROG}: interrupted; progress is saved in {self.ctx.state.path}. "
            "Run the same command again to resume.",
            file=sys.stderr,
        )

    def stop(self) -> None:
        """Stop queued transfers, write the state, close the bar."""
        ctx = self.ctx
        ctx.pool.shutdown(wait=False, cancel_futures=True)
        ctx.state.flush()
        if ctx.progress is not None:
            ctx.progress.close()
            ctx.progress = None

    # -- the end --------------------------------------------------------------------

    def _finish(self) -> int:
        ctx = self.ctx
        ctx.pool.shutdown(wait=True)
        rows = report_rows(ctx.state.files, ctx.options.extension)
        atomic_write(ctx.out / REPORT_NAME, report_text(rows).encode())
        ctx.state.save()
        total = len(rows)
        failed = sum(1 for row in rows if not row[5])  # no output file: not succeeded
        if failed:
            ctx.say(
                f"{total - failed} of {total} done, {failed} failed: see "
                f"{ctx.out / REPORT_NAME}; --retry-failed sends them again"
            )
        else:
            ctx.say(f"all {total} done: results and {REPORT_NAME} in {ctx.out}")
        review = review_line(rows, str(ctx.out / REPORT_NAME))
        if review:
            ctx.say(review)
        return 1 if failed else 0
