"""`cutout up`: the whole service from one command, stopped cleanly, data kept across runs."""

from __future__ import annotations

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


def start_up(
    data_dir: Path, port: int, model_home: Path, log: Path
) -> tuple[subprocess.Popen, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CUTOUT_") and not k.startswith("AWS_")
    }
    env.update(
        CUTOUT_DATA_DIR=str(data_dir),
        CUTOUT_PORT=str(port),
        CUTOUT_MODEL_HOME=str(model_home),
        CUTOUT_MODELS="u2netp",
        CUTOUT_WORKER_CONCURRENCY="1",
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
    proc.kill()
    raise AssertionError("cutout up did not print its URL:\n" + log.read_text()[-3000:])


def descendants(proc: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children(recursive=True)


def stop(proc: subprocess.Popen, children: list[psutil.Process]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[p.cmdline()[:3] for p in alive]}"


def test_up_serves_a_job_stops_cleanly_and_keeps_data(tmp_path, model_home) -> None:
    data_dir, port = tmp_path / "data", free_port()
    proc, url = start_up(data_dir, port, model_home, tmp_path / "up-1.log")
    try:
        assert url == f"http://127.0.0.1:{port}"
        children = descendants(proc)
        names = " ".join(" ".join(p.cmdline()) for p in children)
        assert "redis-server" in names
        assert "weed" in names
        status, _, raw = http("GET", f"{url}/openapi.json")
        assert status == 200
        assert "/v1/jobs" in json.loads(raw)["paths"]
        body, ctype = multipart(
            {"model": "u2netp"}, {"image": ("a.jpg", photo_bytes(), "image/jpeg")}
        )
        status, _, raw = http("POST", f"{url}/v1/jobs", body, {"Content-Type": ctype})
        assert status == 202, raw
        job_id = json.loads(raw)["id"]
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

    # started again on the same folder, the job and its result are still there
    proc, url = start_up(data_dir, port, model_home, tmp_path / "up-2.log")
    try:
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
