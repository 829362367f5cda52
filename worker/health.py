"""Worker liveness: a heartbeat file touched by the consumer, and the probe that reads it.

A worker serves no HTTP, and ``celery inspect ping`` round-trips through the broker for
seconds. So the worker's consumer (Celery's main process, the one that takes messages
from the broker) touches ``CUTOUT_WORKER_HEARTBEAT_FILE`` every :data:`INTERVAL` seconds
from a timer on its own event loop, while it is connected and consuming. The timer
stops with the consumer (a lost broker connection, a shutdown), and it cannot fire while
the event loop is stuck or the process is stopped; the pool children's threads (the
scheduler's heartbeat to Redis) go on regardless, which is why they are no liveness
signal.

The same step tells Redis that this worker consumes (the sorted set ``cutout:consumers``,
shared/stores/telemetry.py): ``/readyz`` counts its live members as ``workers.consuming``, and
``cutout up`` says "ready" once there is one. A thread of the main process writes it every
:data:`INTERVAL` seconds while the event loop's timer keeps firing, so a slow Redis never
holds the event loop; it is deleted when the consumer stops.

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
import threading
import time
from collections.abc import Callable
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


class Publisher:
    """Says in Redis that this worker consumes: ``beat`` every INTERVAL seconds from a
    thread, while :meth:`tick` (the event loop's timer) was called within ``fresh``
    seconds; ``gone`` once stopped. Never raises (Redis down: the next beat tries again)."""

    def __init__(
        self, beat: Callable[[], None], gone: Callable[[], None], fresh: float = 3 * INTERVAL
    ) -> None:
        self.beat, self.gone, self.fresh = beat, gone, fresh
        self.ticked = 0.0
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def tick(self) -> None:
        first = self.ticked == 0.0
        self.ticked = time.monotonic()
        if first:
            self.wake.set()

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="cutout-consumer", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            if self.ticked and time.monotonic() - self.ticked <= self.fresh:
                self._call(self.beat)
            self.wake.wait(INTERVAL)
            self.wake.clear()
        self._call(self.gone)

    def stop(self) -> None:
        """Stop beating and say so, from the thread (this may run in a signal handler:
        nothing here waits for Redis; the key's TTL covers a process that exits first)."""
        self.stopped.set()
        self.wake.set()

    @staticmethod
    def _call(action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - a heartbeat never stops the consumer
            log.debug("consumer heartbeat failed: %s", exc)


def consumer_step(path: Path | None, publisher: Publisher | None = None) -> type:
    """A Celery consumer bootstep that, while the consumer consumes, touches ``path``
    (when given) and keeps ``publisher`` beating."""
    from celery import bootsteps

    def beat() -> None:
        if path is not None:
            touch(path)
        if publisher is not None:
            publisher.tick()

    class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
        # after the consumer has started taking tasks from the broker
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.tref: Any = None

        def start(self, consumer: Any) -> None:
            beat()
            if publisher is not None:
                publisher.start()
            self.tref = consumer.timer.call_repeatedly(INTERVAL, beat, (), priority=10)

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
    from shared.contract.settings import SettingsError, load_settings

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
