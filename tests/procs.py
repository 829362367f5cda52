"""Process listings for tests that look inside a running worker or `cutout up`.

A child that has just exited stays a zombie until its parent reaps it, and psutil
raises on a zombie's command line: the alpha matting warmer (worker/warmup.py) exits
while the tests watch. These helpers read the command lines of live processes only.
(Here, not in testkit/procs.py: psutil is a test dependency, and bench/ imports testkit.)
"""

from __future__ import annotations

import psutil


def command_line(proc: psutil.Process) -> str | None:
    """The process's command line, or None once it has exited (gone or a zombie)."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return " ".join(proc.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return None


def live_children(pid: int, *, recursive: bool = False) -> list[tuple[psutil.Process, str]]:
    """The live children of ``pid`` (all descendants with ``recursive``), each with its
    command line."""
    found = []
    for child in psutil.Process(pid).children(recursive=recursive):
        line = command_line(child)
        if line is not None:
            found.append((child, line))
    return found


def command_lines(pid: int) -> str:
    """The command lines of every live descendant of ``pid``, joined, for asserting
    which servers a command started."""
    return " ".join(line for _, line in live_children(pid, recursive=True))


def has_exited(pid: int) -> bool:
    """Whether ``pid`` has exited: gone, or a zombie not yet reaped (its parent may reap
    it at any moment, so a check in two steps could meet a vanished process)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
