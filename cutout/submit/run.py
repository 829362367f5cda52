"""A whole ``cutout submit`` run: plan, upload, create, follow, download, report."""

from __future__ import annotations

import contextlib
import glob
import sys

from cutout.submit.common import (
    MAX_ITEMS,
    PROG,
    REPORT_NAME,
    UsageError,
    new_entry,
    outcome,
    output_name,
)
from cutout.submit.follow import Follow
from cutout.submit.report import report_rows, report_text, review_line
from cutout.submit.uploads import Uploads
from shared.atomicfile import atomic_write


class Submit(Uploads, Follow):
    """Plan, upload, create the batch, follow it and download, report."""

    # -- planning -------------------------------------------------------------------

    def plan(self, names: list[str]) -> None:
        """Add new files to the state, reset failures for --retry-failed; usage checks."""
        files = self.state.files
        self.present = set(names)
        if not names and not files:
            raise UsageError(f"no image files in {self.args.dir}")
        seen: dict[str, str] = {}
        for name in sorted(set(names) | set(files)):
            target = output_name(name, self.options.extension).lower()
            if target in seen:
                raise UsageError(
                    f"{seen[target]} and {name} would both write "
                    f"{self.out / output_name(name, self.options.extension)}"
                )
            seen[target] = name
        for name in names:
            files.setdefault(name, new_entry())
        if self.args.retry_failed:
            again = [n for n, e in files.items() if outcome(e) == "failed" and n in self.present]
            for name in again:
                files[name] = new_entry()
            if again:
                self._say(f"submitting {len(again)} failed image(s) again")
        for name, entry in files.items():
            if name not in self.present and entry["batch"] is None:
                entry["error"] = {"code": "missing", "message": "the file is no longer in DIR"}
        self.processed_before = sum(1 for e in files.values() if outcome(e) != "pending")
        # a batch already created is a resume, even when a SIGKILL came before the state
        # recorded any download (the files on disk are recognised by their size later)
        if self.processed_before or self.state.batches:
            done = sum(1 for e in files.values() if outcome(e) == "succeeded")
            self._say(f"resuming: {done} of {len(files)} results already downloaded")
            self._remove_stale_parts()
        self.state.save()

    def _remove_stale_parts(self) -> None:
        """Delete the temporary files a killed run left mid-write (a download, the state,
        the report: ``.<name>.<random>.part`` beside each, shared/atomicfile.py); only
        ours, so nothing a user keeps in OUT is touched."""
        targets = [self.out / output_name(n, self.options.extension) for n in self.state.files]
        targets += [self.state.path, self.out / REPORT_NAME]
        for target in targets:
            for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
                with contextlib.suppress(OSError):
                    stale.unlink()

    # -- the whole run --------------------------------------------------------------

    def execute(self) -> int:
        state = self.state
        # a batch whose POST was sent but whose answer was never saved: ask again, same key
        for seq, record in enumerate(state.batches):
            if record["id"] is None and record["files"]:
                self._create(seq)
        todo = [
            name
            for name, entry in sorted(state.files.items())
            # never submitted (new, or its upload failed): not a re-submission
            if entry["batch"] is None and name in self.present and entry["status"] is None
        ]
        if todo:
            # uploads of an interrupted run stay in storage: send only the others
            self._upload([n for n in todo if not state.files[n]["upload_key"]])
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
                            "webhook_url": self.args.webhook_url,
                        }
                    )
                    for name in chunk:
                        state.files[name]["batch"] = seq
                    state.save()  # before the request: the key must survive a crash
                self._create(seq)
        self._follow()
        return self._finish()

    def interrupted(self) -> None:
        self.stop()
        print(
            f"\n{PROG}: interrupted; progress is saved in {self.state.path}. "
            "Run the same command again to resume.",
            file=sys.stderr,
        )

    def stop(self) -> None:
        """Stop queued transfers, write the state, close the bar."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.state.flush()
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    # -- the end --------------------------------------------------------------------

    def _finish(self) -> int:
        self.pool.shutdown(wait=True)
        rows = report_rows(self.state.files, self.options.extension)
        atomic_write(self.out / REPORT_NAME, report_text(rows).encode())
        self.state.save()
        total = len(rows)
        failed = sum(1 for row in rows if not row[5])  # no output file: not succeeded
        if failed:
            self._say(
                f"{total - failed} of {total} done, {failed} failed: see "
                f"{self.out / REPORT_NAME}; --retry-failed sends them again"
            )
        else:
            self._say(f"all {total} done: results and {REPORT_NAME} in {self.out}")
        review = review_line(rows, str(self.out / REPORT_NAME))
        if review:
            self._say(review)
        return 1 if failed else 0
