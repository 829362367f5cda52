"""Keep a child server of ``cutout up`` running: restart it when it exits, with a back-off.

A worker whose main process is killed (SIGKILL, the OOM killer) used to take the whole
stack down with it. ``cutout up`` now restarts the worker and the API like a process
supervisor: after 1 s, then 2, 4 … up to 30 s while it keeps exiting, back to 1 s once
a run has lasted a minute. Jobs the dead worker held are not lost: its pool children die
with it, and the stuck-job sweeper of the new worker re-queues their jobs after their
run deadline (docs/operations.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cutout.stack import Server

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
HEALTHY_AFTER = 60.0  # a run this long resets the back-off


@dataclass
class Keeper:
    """Restarts ``server`` when it has exited; :meth:`poll` it in the supervising loop."""

    server: Server
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    delay: float = FIRST_DELAY
    restarts: int = 0
    started_at: float = field(default=0.0)
    restart_at: float | None = None

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    def poll(self) -> None:
        """Restart the server if it exited and its back-off has passed."""
        now = self.clock()
        if self.server.alive:
            if now - self.started_at >= HEALTHY_AFTER:
                self.delay = FIRST_DELAY
            return
        if self.restart_at is None:
            code = self.server.proc.returncode if self.server.proc is not None else None
            self.say(
                f"cutout up: {self.server.name} exited ({_describe(code)}); "
                f"restarting in {self.delay:.0f}s\n{self.server.tail(10)}"
            )
            self.restart_at = now + self.delay
            return
        if now < self.restart_at:
            return
        # what is left of the old process group (pool children) goes first
        self.server.stop(timeout=5)
        self.server.start()
        self.restarts += 1
        self.started_at = now
        self.restart_at = None
        self.delay = min(MAX_DELAY, self.delay * 2)
        self.say(f"cutout up: {self.server.name} restarted (restart {self.restarts})")


def _describe(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit status {code}"
