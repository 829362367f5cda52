"""Redis crashes under a batch and comes back without the last writes of its AOF.

With ``appendfsync everysec`` Redis acknowledges writes before they are on disk. A
SIGKILL of the process alone loses none of them (they are in the page cache already); a
power loss or a kernel crash loses the last second or so, a suffix of the write stream.
This test does both halves for real: SIGKILL of ``redis-server`` under a 30-item batch,
then the AOF cut where such a loss can cut it (a command boundary) before Redis starts
again on it. The cut is placed at the first message pushed to ``bulk``: the batch's
records, its dispatch cursor and the queued index survive, every item's message is gone,
and so is everything after (the workers' progress). Nothing but the reconciler
(worker/reconcile.py) can run those items again; the test ends in an exact accounting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from tests.faults.conftest import FaultStack, assert_exact_accounting, metric

DOWN_S = 3  # long enough that every client call in flight fails, as in a real crash


def commands(data: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """The AOF's commands (RESP arrays of bulk strings), each with its byte offset."""
    pos = 0
    while pos < len(data):
        start = pos
        if data[pos : pos + 1] != b"*":
            raise ValueError(f"not a RESP array at byte {pos}")
        end = data.index(b"\r\n", pos)
        count = int(data[pos + 1 : end])
        pos = end + 2
        args = []
        for _ in range(count):
            end = data.index(b"\r\n", pos)
            length = int(data[pos + 1 : end])
            pos = end + 2
            args.append(data[pos : pos + length])
            pos += length + 2
        yield start, args


def cut_before_first(aof: Path, command: bytes, key: bytes) -> int:
    """Truncate ``aof`` at the first ``command key …``; returns the bytes dropped."""
    data = aof.read_bytes()
    for offset, args in commands(data):
        if args[0].upper() == command and len(args) > 1 and args[1] == key:
            with aof.open("r+b") as handle:
                handle.truncate(offset)
            return len(data) - offset
    raise AssertionError(f"no {command!r} {key!r} in {aof}")


def test_redis_sigkilled_and_its_aof_tail_lost_mid_batch(stack: FaultStack) -> None:
    stack.receiver.up()
    batch = stack.submit_batch()
    stack.wait_progress(batch["id"])

    stack.redis.kill()
    dropped = cut_before_first(stack.root / "redis" / "appendonly.aof", b"LPUSH", b"bulk")
    assert dropped > 0
    time.sleep(DOWN_S)
    stack.redis.start()
    stack.wait_redis()

    # what the crash left: the batch's items queued, their messages gone
    assert stack.batch(batch["id"])["counts"]["queued"] >= 1

    assert_exact_accounting(stack, batch["id"])
    logs = "".join(w.log_path.read_text(errors="replace") for w in stack.workers)
    assert "re-sent a queued job whose message was lost" in logs
    assert metric(stack.metrics(), "cutout_job_retries_total", reason="message_lost") >= 1
