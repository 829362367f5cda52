"""`cutout up` with CUTOUT_REDIS_URL naming Sentinels: it starts no Redis of its own, and
its API and worker find the primary through them (testkit/sentinel.py)."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from cutout.stack import free_port
from testkit.sentinel import MASTER_NAME, SentinelCluster
from tests.integration.conftest import http
from tests.integration.test_service import poll
from tests.integration.test_up import descendants, start_up, stop, submit_plain


def test_up_takes_a_sentinel_url_and_starts_no_redis(tmp_path: Path, model_home: Path) -> None:
    cluster = SentinelCluster(tmp_path / "redis")
    cluster.start()
    try:
        proc, url = start_up(
            tmp_path / "data",
            free_port(),
            model_home,
            tmp_path / "up.log",
            CUTOUT_REDIS_URL=cluster.url,
            CUTOUT_REDIS_MASTER_NAME=MASTER_NAME,
        )
        try:
            children = descendants(proc)
            names = " ".join(" ".join(p.cmdline()) for p in children)
            assert "redis-server" not in names
            assert "starting Redis" not in (tmp_path / "up.log").read_text()
            job_id = submit_plain(url)
            job, _ = poll(url, job_id)
            assert job["status"] == "succeeded", job
            # the job's record is in the primary the Sentinels name
            primary = cluster.client()
            assert any(job_id in key for key in primary.scan_iter(f"*{job_id}*"))
            status, _, raw = http("GET", f"{url}/readyz")
            assert status == 200, raw
            assert json.loads(raw)["workers"]["consuming"] == 1
        except BaseException:
            proc.kill()
            psutil.wait_procs(descendants(proc), timeout=10)
            raise
        stop(proc, children)
    finally:
        cluster.stop()
