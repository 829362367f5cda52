"""One pool child of a worker polls Redis for all of them (worker/scheduler.py ``Duty``):
the lock is exclusive, kept by its holder, and passes on when the holder dies however
it dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from worker.scheduler import Duty
from worker.warmup import duty_lock_path, remove_worker_locks

HOLD = """
import sys, time
from pathlib import Path
from worker.scheduler import Duty
duty = Duty(Path(sys.argv[1]))
print(duty.held(), flush=True)
time.sleep(60)
"""


def test_one_holder_at_a_time_and_it_keeps_the_duty(tmp_path: Path) -> None:
    path = tmp_path / "duty.lock"
    first, second = Duty(path), Duty(path)
    assert first.held()
    assert not second.held()
    # the holder keeps it pass after pass, the other keeps asking in vain
    assert first.held()
    assert first.held()
    assert not second.held()


def test_the_duty_passes_on_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "duty.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "True"
        waiting = Duty(path)
        assert not waiting.held()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 5
        while not waiting.held():
            assert time.monotonic() < deadline, "the lock did not pass on"
            time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait(10)


def test_the_worker_removes_its_lock_file_when_it_exits() -> None:
    pid = 999_999_991  # no real worker has it
    path = duty_lock_path(pid)
    assert Duty(path).held()
    assert path.exists()
    remove_worker_locks(pid)
    assert not path.exists()
