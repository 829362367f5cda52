"""Worker liveness: a heartbeat file touched by the consumer, and the probe that reads it.

A worker serves no HTTP, and ``celery inspect ping`` round-trips through the broker for
seconds. So the worker's consumer (Celery's main process, the one that takes messages
from the broker) touches ``CUTOUT_WORKER_HEARTBEAT_FILE`` every :data:`INTERVAL` seconds
from a timer on its own event loop, while it is connected and consuming. The timer
stops with the consumer (a lost broker connection, a shutdown), and it cannot fire while
the event loop is stuck or the process is stopped; the pool children's threads (the
scheduler's heartbeat to Redis) go on regardless, which is why they are no liveness
signal.

The probe, for a Kubernetes ``exec`` liveness probe or a Compose healthcheck::

    python -m worker.health [--max-age 60]

exits 0 when the file was touched within ``--max-age`` seconds, 1 when it is older or
missing (saying which), 2 when ``CUTOUT_WORKER_HEARTBEAT_FILE`` is not set. With the
prefork or threads pool, jobs run outside the event loop and a bound of a minute is
plenty; the solo pool (GPU workers) runs a job on the event loop itself, so its bound
must exceed ``CUTOUT_TASK_TIME_LIMIT``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("cutout.worker")

INTERVAL = 5.0  # seconds between touches
DEFAULT_MAX_AGE = 60.0


def touch(path: Path) -> None:
    """Set the file's modification time to now (creating it)."""
    with contextlib.suppress(OSError):  # a full or read-only disk must not stop consuming
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
        os.utime(path, None)


def consumer_step(path: Path) -> type:
    """A Celery consumer bootstep that touches ``path`` while the consumer consumes."""
    from celery import bootsteps

    class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
        # after the consumer has started taking tasks from the broker
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.tref: Any = None

        def start(self, consumer: Any) -> None:
            touch(path)
            self.tref = consumer.timer.call_repeatedly(INTERVAL, touch, (path,), priority=10)

        def stop(self, consumer: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None

        def shutdown(self, consumer: Any) -> None:
            self.stop(consumer)

    return Heartbeat


def check(path: Path, max_age: float, now: float | None = None) -> tuple[bool, str]:
    """Whether ``path`` was touched within ``max_age`` seconds, and a line saying so."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False, f"no heartbeat at {path}: the worker's consumer has not started"
    except OSError as exc:
        return False, f"cannot read the heartbeat at {path}: {exc.strerror}"
    if age > max_age:
        return False, f"last heartbeat {age:.0f}s ago (bound {max_age:.0f}s): not consuming"
    return True, f"last heartbeat {age:.1f}s ago"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.health", description="Worker liveness probe."
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=DEFAULT_MAX_AGE,
        help="seconds since the consumer's last heartbeat (default 60; above "
        "CUTOUT_TASK_TIME_LIMIT for the solo pool)",
    )
    args = parser.parse_args(argv)
    from shared.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"worker.health: {exc}", file=sys.stderr)
        return 2
    if settings.worker_heartbeat_file is None:
        print("worker.health: CUTOUT_WORKER_HEARTBEAT_FILE is not set", file=sys.stderr)
        return 2
    ok, message = check(settings.worker_heartbeat_file, args.max_age)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
