"""The progress line of ``cutout submit`` (and ``cutout remove`` on several inputs,
``cutout eval``) on stderr."""

from __future__ import annotations

import sys
import time
from typing import Any

from cutout.submit.common import PROG


class Progress:
    """One line on stderr: a tqdm bar on a terminal, else a plain line every few seconds."""

    PLAIN_EVERY = 5.0

    def __init__(self, label: str, total: int, initial: int, quiet: bool, prog: str = PROG) -> None:
        self.prog = prog
        self.label = label
        self.total = total
        self.count = initial
        self.start_count = initial
        self.started = time.monotonic()
        self.quiet = quiet
        self._printed = 0.0
        self.bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=label, unit="img", file=sys.stderr, leave=True
            )

    def write(self, message: str) -> None:
        """A message line on stderr that leaves the bar intact."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def update(self, count: int, extra: str = "") -> None:
        delta, self.count = count - self.count, count
        if self.bar is not None:
            if extra:
                self.bar.set_postfix_str(extra, refresh=False)
            self.bar.update(delta)
        elif not self.quiet and time.monotonic() - self._printed >= self.PLAIN_EVERY:
            self.print_line(extra)

    def print_line(self, extra: str = "") -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (self.count - self.start_count) / elapsed
        left = self.total - self.count
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        print(
            f"{self.prog}: {self.label} {self.count}/{self.total}"
            + (f" ({extra})" if extra else "")
            + f", {rate:.1f} img/s, ETA {eta}",
            file=sys.stderr,
            flush=True,
        )
        self._printed = time.monotonic()

    def close(self, extra: str = "") -> None:
        if self.bar is not None:
            if extra:
                self.bar.set_postfix_str(extra, refresh=False)
            self.bar.close()
        elif not self.quiet:
            self.print_line(extra)
