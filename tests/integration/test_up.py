"""`cutout up`: the whole service from one command, stopped cleanly, data kept across runs;
it shows its progress and says "ready" only once a worker takes jobs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cutout.stack import free_port, port_open
from tests.conftest import ROOT
from tests.integration.conftest import http, multipart
from tests.integration.test_service import poll
from tests.integration.test_worker import photo_bytes
from tests.procs import command_line, command_lines, live_children


def start_up(
    data_dir: Path, port: int, model_home: Path, log: Path, **extra: str
) -> tuple[subprocess.Popen, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CUTOUT_", "AWS_", "NUMBA_CACHE_DIR"))
    }
    env.update(
        CUTOUT_DATA_DIR=str(data_dir),
        CUTOUT_PORT=str(port),
        CUTOUT_MODEL_HOME=str(model_home),
        CUTOUT_MODELS="u2netp",
        CUTOUT_WORKER_CONCURRENCY="1",
        **extra,
    )
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "cutout", "up"],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        match = re.search(r"Cutout is running at (http://\S+)", text)
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            raise AssertionError(f"cutout up exited {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.3)
    children = descendants(proc)  # SIGKILL of `cutout up` alone would orphan them
    for process in [*children, psutil.Process(proc.pid)]:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(children, timeout=10)
    raise AssertionError("cutout up did not print its URL:\n" + log.read_text()[-3000:])


def descendants(proc: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children(recursive=True)


def worker_environ(proc: subprocess.Popen) -> dict[str, str]:
    """The environment of the `cutout worker` that `cutout up` started."""
    (worker,) = [p for p, line in live_children(proc.pid) if line.endswith(" worker")]
    return worker.environ()


def progress(log: Path) -> list[str]:
    """`cutout up`'s lines up to "Cutout is running at"."""
    lines = log.read_text(errors="replace").splitlines()
    end = next(i for i, line in enumerate(lines) if "Cutout is running at" in line)
    return lines[: end + 1]


def submit_plain(url: str) -> str:
    body, ctype = multipart({"model": "u2netp"}, {"image": ("a.jpg", photo_bytes(), "image/jpeg")})
    status, _, raw = http("POST", f"{url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 202, raw
    return json.loads(raw)["id"]  # type: ignore[no-any-return]


def stop(proc: subprocess.Popen, children: list[psutil.Process]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[command_line(p) for p in alive]}"


def test_up_serves_a_job_stops_cleanly_and_keeps_data(tmp_path, model_home) -> None:
    data_dir, port = tmp_path / "data", free_port()
    proc, url = start_up(data_dir, port, model_home, tmp_path / "up-1.log")
    try:
        # "ready" only once a worker takes jobs: a plain job submitted now runs
        job_id = submit_plain(url)
        assert url == f"http://127.0.0.1:{port}"
        lines = progress(tmp_path / "up-1.log")
        order = [
            "starting Redis",
            "starting S3 storage",
            "starting the worker",
            "api      ready",
            "worker   taking jobs",
            "ready in",
            "Cutout is running at",
        ]
        seen = [next(i for i, line in enumerate(lines) if line.startswith(m)) for m in order]
        assert seen == sorted(seen), lines
        status, _, raw = http("GET", f"{url}/readyz")
        assert status == 200
        assert json.loads(raw)["workers"]["consuming"] == 1
        # numba's compile cache (alpha matting) is kept in the data folder by default
        assert worker_environ(proc)["NUMBA_CACHE_DIR"] == str(data_dir / "numba")
        children = descendants(proc)
        names = command_lines(proc.pid)
        assert "redis-server" in names
        assert "weed" in names
        status, _, raw = http("GET", f"{url}/openapi.json")
        assert status == 200
        assert "/v1/jobs" in json.loads(raw)["paths"]
        job, _ = poll(url, job_id)
        assert job["status"] == "succeeded", job
        status, _, first_result = http("GET", f"{url}/v1/jobs/{job_id}/result")
        assert status == 200
    except BaseException:
        proc.kill()
        raise
    stop(proc, children)
    # nothing listens on the API port any more
    assert not port_open(port)

    # started again on the same folder, the job and its result are still there; a
    # NUMBA_CACHE_DIR of the user's own is kept
    own_cache = tmp_path / "numba-cache"
    proc, url = start_up(
        data_dir, port, model_home, tmp_path / "up-2.log", NUMBA_CACHE_DIR=str(own_cache)
    )
    try:
        assert worker_environ(proc)["NUMBA_CACHE_DIR"] == str(own_cache)
        children = descendants(proc)
        status, _, raw = http("GET", f"{url}/v1/jobs/{job_id}")
        assert status == 200
        assert json.loads(raw)["status"] == "succeeded"
        status, _, again = http("GET", f"{url}/v1/jobs/{job_id}/result")
        assert status == 200
        assert again == first_result
        # a second stack on the same folder is refused before it starts anything: it
        # once ran a second Redis on the same AOF file
        other = tmp_path / "up-other.log"
        with pytest.raises(AssertionError, match="exited 2") as refused:
            start_up(data_dir, free_port(), model_home, other)
        assert f"{data_dir} is in use by another cutout up (pid {proc.pid})" in str(refused.value)
        assert "redis" not in other.read_text().replace("cutout up:", "")
        status, _, _ = http("GET", f"{url}/v1/jobs/{job_id}")
        assert status == 200
    except BaseException:
        proc.kill()
        raise
    stop(proc, children)
