"""``cutout up`` keeps the stack up when the worker's main process is SIGKILLed: it
restarts the worker (with a back-off), and a 30-job batch in flight ends in exact
accounting (tests/faults/conftest.py says what that checks).

This test runs its own ``cutout up`` (Redis, SeaweedFS, the API and one worker, all
started by it) instead of the tier's stack fixture: the supervisor is what is tested.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from cutout.stack import free_port
from tests.conftest import ROOT, S3_CREDENTIALS
from tests.faults.conftest import (
    API_KEY,
    BUCKET,
    RETRY_SCHEDULE,
    TASK_TIME_LIMIT,
    TENANT,
    FaultStack,
    HookReceiver,
    assert_exact_accounting,
)
from tests.integration.conftest import wait_for
from tests.procs import has_exited, live_children


@dataclass
class UpStack(FaultStack):
    """The accounting's view of a stack that ``cutout up`` started."""

    def __post_init__(self) -> None:  # the servers belong to `cutout up`
        pass


def _start_up(root: Path, model_home: Path) -> tuple[subprocess.Popen[bytes], UpStack, Path]:
    log = root / "up.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOUT_", "AWS_"))}
    env.update(S3_CREDENTIALS)
    env.update(
        CUTOUT_DATA_DIR=str(root / "data"),
        CUTOUT_PORT=str(port),
        CUTOUT_MODEL_HOME=str(model_home),
        CUTOUT_MODELS="u2netp",
        CUTOUT_S3_BUCKET=BUCKET,
        CUTOUT_API_KEYS=f"{TENANT}:{API_KEY}",
        CUTOUT_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8,::1/128",
        CUTOUT_RATE_LIMIT="1000",
        CUTOUT_RATE_BURST="100000",
        CUTOUT_WORKER_CONCURRENCY="1",
        CUTOUT_ORT_THREADS="1",
        CUTOUT_TASK_TIME_LIMIT=str(TASK_TIME_LIMIT),
        CUTOUT_WEBHOOK_RETRY_SCHEDULE=RETRY_SCHEDULE,
        CUTOUT_FAST="off",
    )
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "cutout", "up"], env=env, cwd=ROOT, stdout=out, stderr=out
    )
    out.close()

    def running() -> re.Match[str] | None:
        if proc.poll() is not None:
            raise AssertionError(f"cutout up exited:\n{log.read_text()[-3000:]}")
        return re.search(r"Cutout is running at (http://\S+)", log.read_text(errors="replace"))

    url = wait_for(running, 300, 0.3).group(1)
    text = log.read_text()
    redis_port = re.search(r"redis +127\.0\.0\.1:(\d+)", text).group(1)  # type: ignore[union-attr]
    s3 = re.search(r"s3 +(http://\S+)", text).group(1)  # type: ignore[union-attr]
    stack = UpStack(root, model_home, receiver=HookReceiver())
    stack.url = url
    stack.redis_url = f"redis://127.0.0.1:{redis_port}/0"
    stack.s3_endpoint = s3
    return proc, stack, log


@pytest.fixture
def up(tmp_path: Path, model_home: Path) -> Iterator[tuple[subprocess.Popen[bytes], UpStack, Path]]:
    if not (model_home / "u2netp.onnx").exists():
        pytest.skip("u2netp weights missing: run `cutout models fetch`")
    proc, stack, log = _start_up(tmp_path, model_home)
    try:
        yield proc, stack, log
    finally:
        stack.receiver.down()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        print(log.read_text(errors="replace")[-4000:])


def worker_parent(up_pid: int) -> psutil.Process:
    """The ``cutout worker`` main process that ``cutout up`` started."""
    for child, line in live_children(up_pid):  # not the dead one, until `cutout up` reaps it
        if "worker" in line.split():
            return child
    raise LookupError("no live worker under cutout up")


def test_worker_parent_sigkilled_under_cutout_up_is_restarted(
    up: tuple[subprocess.Popen[bytes], UpStack, Path],
) -> None:
    proc, stack, log = up
    stack.receiver.up()
    batch = stack.submit_batch()
    stack.wait_progress(batch["id"], succeeded=2)
    old = worker_parent(proc.pid)
    old_children = old.children()
    wait_for(lambda: stack.batch(batch["id"])["counts"]["processing"] >= 1, 120, 0.02)
    os.kill(old.pid, signal.SIGKILL)  # the parent only, as the OOM killer would

    # a new worker process appears under the same `cutout up`, which keeps running

    def restarted() -> psutil.Process | None:
        try:
            found = worker_parent(proc.pid)
        except LookupError:
            return None
        return found if found.pid != old.pid else None

    new = wait_for(restarted, 120, 0.2)
    assert proc.poll() is None
    assert new.is_running()
    # the dead parent's pool children went with it (they were not left to run on)
    for child in old_children:
        wait_for(lambda child=child: has_exited(child.pid), 30)

    assert_exact_accounting(stack, batch["id"])
    assert proc.poll() is None, "cutout up stopped"
    text = log.read_text(errors="replace")
    assert "worker exited (killed by signal 9); restarting in 1s" in text
    assert "worker restarted (restart 1)" in text
    assert "exited unexpectedly; stopping" not in text
