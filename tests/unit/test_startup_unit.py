"""The pieces of a worker's start that need no server: what the first heartbeat says of
fast mode (worker/warmup.py), the gate that holds alpha matting's import while the
warmer compiles, the consumer's Redis heartbeat (worker/health.py), and the stages
`cutout up` prints from /readyz (cutout/commands/up.py)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cutout.commands.up import _stage
from shared.contract.settings import load_settings
from worker.engine.fast import fast_paths
from worker.health import Publisher
from worker.warmup import fast_prospect, wait_for_warmer


def test_fast_prospect_says_loading_only_when_the_worker_will_load_it(tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the fast extra is not installed")

    def prospect(**env: str) -> str:
        return fast_prospect(load_settings({"CUTOUT_MODEL_HOME": str(tmp_path), **env}))

    assert prospect(CUTOUT_FAST="off") == "unavailable"
    assert prospect(CUTOUT_FAST="auto") == "unavailable"  # nothing built here
    assert prospect(CUTOUT_FAST="build") == "loading"
    assert prospect(CUTOUT_FAST="build", CUTOUT_MODELS="u2netp") == "unavailable"
    fast_paths(tmp_path)[2].write_text("{}")  # a record: checked when it loads
    assert prospect(CUTOUT_FAST="auto") == "loading"


def test_the_matting_gate_waits_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / ".cutout-matting.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(lock)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert holder.stdout.readline() == b"held\n"
    passed = threading.Event()
    waiter = threading.Thread(target=lambda: (wait_for_warmer(lock), passed.set()))
    waiter.start()
    try:
        assert not passed.wait(1.0), "went on while the warmer held the lock"
    finally:
        holder.stdin.close()  # the holder exits: its lock goes with it
        holder.wait(10)
    waiter.join(10)
    assert passed.is_set()
    with open(lock) as handle:  # the gate let the lock go again
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_consumer_heartbeat_beats_while_the_loop_ticks_and_says_when_it_stops() -> None:
    calls: list[str] = []
    publisher = Publisher(beat=lambda: calls.append("beat"), gone=lambda: calls.append("gone"))
    publisher.start()
    time.sleep(0.2)
    assert calls == [], "no beat before the consumer's loop ticked"
    publisher.tick()
    deadline = time.monotonic() + 5
    while "beat" not in calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls == ["beat"]
    publisher.stop()
    assert publisher.thread is not None
    publisher.thread.join(5)
    assert calls[-1] == "gone"


def test_cutout_up_stages_follow_readyz() -> None:
    assert _stage(0, {}, "u2net").startswith("api      starting")
    assert _stage(503, {}, "u2net").startswith("api      waiting for Redis and storage")
    ready = {"status": "ok", "workers": {"alive": 0, "consuming": 0}}
    assert _stage(200, ready, "u2net").startswith("worker   starting")
    ready["workers"]["alive"] = 2
    assert _stage(200, ready, "u2net") == "worker   pool started; loading u2net …"
    ready["workers"]["consuming"] = 1
    assert _stage(200, ready, "u2net") == "worker   taking jobs"
