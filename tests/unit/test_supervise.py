"""``cutout up`` restarts a server that exited, with a growing back-off (cutout/supervise.py).

The server here is a real, trivial process (``python -c ...``); the clock is ours.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cutout.stack import Server
from cutout.supervise import FIRST_DELAY, HEALTHY_AFTER, Keeper


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_exiting_server_is_restarted_with_back_off(tmp_path: Path) -> None:
    server = Server("worker", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "w.log")
    server.start()
    said: list[str] = []
    clock = Clock()
    keeper = Keeper(server, say=said.append, clock=clock)
    delays = []
    for _ in range(7):
        assert server.proc is not None
        server.proc.wait(30)
        keeper.poll()  # notices the exit, schedules the restart
        assert "exited (exit status 3)" in said[-1]
        delays.append(keeper.delay)
        clock.now += keeper.delay - 0.01
        keeper.poll()
        assert not server.alive  # not before its back-off
        clock.now += 0.02
        keeper.poll()
        assert "restarted" in said[-1]
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert keeper.restarts == 7
    assert server.proc is not None
    server.proc.wait(30)


def test_a_long_run_resets_the_back_off(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    server = Server("api", sleeper, tmp_path / "a.log")
    server.start()
    clock = Clock()
    keeper = Keeper(server, say=lambda _: None, clock=clock, delay=16)
    try:
        clock.now += HEALTHY_AFTER
        keeper.poll()
        assert keeper.delay == FIRST_DELAY
        assert keeper.restarts == 0
    finally:
        server.kill()
