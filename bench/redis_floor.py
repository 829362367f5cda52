"""What one round trip costs Redis by itself, at a slow and at a full rate (issue 30, item 1).

    python bench/redis_floor.py [--calls 600] [--gap-ms 20]

A fresh redis-server configured as `cutout up` starts it (AOF, appendfsync everysec, in a
temporary folder on this machine's disk) gets one kind of call at a time from one client:
a PING (a read that touches no data) and a 100-byte SET (a write, so an AOF append), first
one call every ``--gap-ms`` (Redis idle between calls, as in `cutout up` at a few jobs per
second), then back to back. For each it reports the server's CPU per call (INFO cpu, user
+ system, and system alone), with the same window of idle time measured after and taken
out. The kernel accounts CPU time in ticks, so a figure rests on many calls: keep
``--calls`` × the gap at 10 s or more, and read a few microseconds as noise.

It is the floor under bench/redis_cost.py's per-job figures: a job's Redis work is a
handful of round trips, and at a slow rate each one pays this, whatever it carries.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cutout.stack import free_port  # noqa: E402


def cpu(r: Any) -> tuple[float, float]:
    info = r.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"], info["used_cpu_sys"]


def per_call(r: Any, call: Callable[[], Any], calls: int, gap: float) -> tuple[float, float]:
    """Redis CPU per call, total and system, in µs, idle taken out."""
    before = cpu(r)
    started = time.monotonic()
    for _ in range(calls):
        call()
        if gap:
            time.sleep(gap)
    elapsed = time.monotonic() - started
    after = cpu(r)
    time.sleep(elapsed)
    idle = cpu(r)
    total = (after[0] - before[0]) - (idle[0] - after[0])
    system = (after[1] - before[1]) - (idle[1] - after[1])
    return total / calls * 1e6, system / calls * 1e6


def main() -> int:
    import redis

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=600, help="calls at the slow rate")
    parser.add_argument("--gap-ms", type=float, default=20.0)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="cutout-rfloor-")
    port = free_port()
    server = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", folder),
            *("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        r = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        kinds = {"PING": r.ping, "SET 100 B (AOF append)": lambda: r.set("k", "x" * 100)}
        print(f"{'call':24s} {'rate':>22s} {'µs CPU/call':>12s} {'of it system':>13s}")
        for gap in (args.gap_ms / 1000, 0.0):
            calls = args.calls if gap else args.calls * 50
            rate = f"one per {args.gap_ms:g} ms" if gap else "back to back"
            for name, call in kinds.items():
                total, system = per_call(r, call, calls, gap)
                print(f"{name:24s} {rate:>22s} {total:12.1f} {system:13.1f}")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
