"""What every part of a ``cutout submit`` run shares: the client, the state, the pool,
the progress bar. The parts (:class:`cutout.submit.uploads.Uploads`,
:class:`cutout.submit.follow.Follow`) each hold it, and :class:`cutout.submit.run.Submit`
holds it and them: one context passed in, not a class each part inherits."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from cutout.submit.common import PROG, outcome
from cutout.submit.progress import Progress
from cutout.submit.state import State

if TYPE_CHECKING:
    from cutout.client import ApiClient


class Context:
    """What the run's parts share; :meth:`say` writes a line without breaking the bar."""

    def __init__(
        self,
        args: argparse.Namespace,
        client: ApiClient,
        state: State,
        source: Path,
        out: Path,
    ) -> None:
        from shared.contract.options import parse_options

        self.args = args
        self.client = client
        self.state = state
        self.source = source
        self.out = out
        self.options = parse_options(state.data["options"])
        self.pool = ThreadPoolExecutor(args.concurrency, thread_name_prefix="submit")
        self.futures: set[Future[None]] = set()
        self.present: set[str] = set()
        self.progress: Progress | None = None
        self.processed_before = 0

    def say(self, message: str) -> None:
        if self.args.quiet:
            return
        if self.progress is not None and self.progress.bar is not None:
            self.progress.bar.write(f"{PROG}: {message}", file=sys.stderr)  # keeps the bar
        else:
            print(f"{PROG}: {message}", file=sys.stderr)

    def counts(self) -> tuple[int, int]:
        with self.state.lock:
            outcomes = [outcome(e) for e in self.state.files.values()]
        return outcomes.count("succeeded"), outcomes.count("failed")

    def counts_text(self) -> str:
        done, failed = self.counts()
        return f"{done} done, {failed} failed"

    def show(self) -> None:
        if self.progress is not None:
            done, failed = self.counts()
            self.progress.update(done + failed, f"{done} done, {failed} failed")
