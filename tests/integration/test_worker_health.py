"""The worker liveness probe (`python -m worker.health`) against a real `cutout worker`.

The worker consumes a Redis database of this module's own (no other test's jobs) and
touches its heartbeat file from its consumer. The probe passes while the worker
consumes; once the consumer's process is stopped (SIGSTOP of Celery's main process only:
its pool child and that child's threads go on) it fails within the bound, naming why; and
it passes again once the process continues.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis

from tests.conftest import ROOT
from tests.integration.conftest import WorkerProcess, wait_for

MAX_AGE = 8  # seconds; the consumer touches the file every 5 s


def probe(heartbeat: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CUTOUT_WORKER_HEARTBEAT_FILE=str(heartbeat))
    return subprocess.run(
        [sys.executable, "-m", "worker.health", "--max-age", str(MAX_AGE)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_probe_passes_while_consuming_and_fails_when_the_consumer_stops(
    start_worker: Callable[..., WorkerProcess], module_db: str, tmp_path: Path
) -> None:
    heartbeat = tmp_path / "worker.alive"
    url = module_db
    redis.Redis.from_url(url).flushdb()
    # no file yet: nothing has touched it
    assert probe(heartbeat).returncode == 1
    worker = start_worker(
        {
            "CUTOUT_REDIS_URL": url,
            "CUTOUT_MODELS": "u2netp",
            "CUTOUT_WORKER_HEARTBEAT_FILE": str(heartbeat),
        }
    )
    try:
        live = probe(heartbeat)
        assert live.returncode == 0, live.stderr
        assert "last heartbeat" in live.stdout

        os.kill(worker.proc.pid, signal.SIGSTOP)  # the consumer's process only
        try:
            stopped = wait_for(
                lambda: (p := probe(heartbeat)).returncode == 1 and p, MAX_AGE * 8, 1.0
            )
            assert "not consuming" in stopped.stderr
        finally:
            os.kill(worker.proc.pid, signal.SIGCONT)
        back = wait_for(lambda: (p := probe(heartbeat)).returncode == 0 and p, 60, 0.5)
        assert "last heartbeat" in back.stdout
    finally:
        worker.stop()


def test_probe_without_a_heartbeat_file_setting() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CUTOUT_WORKER_HEARTBEAT_FILE"}
    result = subprocess.run(
        [sys.executable, "-m", "worker.health"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CUTOUT_WORKER_HEARTBEAT_FILE is not set" in result.stderr
