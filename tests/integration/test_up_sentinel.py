"""`cutout up` with CUTOUT_REDIS_URL naming Sentinels: it starts no Redis of its own, and
its API and worker find the primary through them (testkit/sentinel.py); also with a
password on the primary (in the URL) and one of the Sentinels' own
(CUTOUT_REDIS_SENTINEL_PASSWORD), as a production Sentinel setup has them."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from cutout.stack import free_port
from testkit.sentinel import MASTER_NAME, SentinelCluster
from tests.integration.conftest import http
from tests.integration.test_service import poll
from tests.integration.test_up import descendants, start_up, stop, submit_plain
from tests.procs import command_lines


@pytest.mark.parametrize(
    ("password", "sentinel_password"), [(None, None), ("pr1mary:p@ss/word", "s3ntinel-only")]
)
def test_up_takes_a_sentinel_url_and_starts_no_redis(
    tmp_path: Path, model_home: Path, password: str | None, sentinel_password: str | None
) -> None:
    cluster = SentinelCluster(
        tmp_path / "redis", password=password, sentinel_password=sentinel_password
    )
    cluster.start()
    settings = {"CUTOUT_REDIS_URL": cluster.url, "CUTOUT_REDIS_MASTER_NAME": MASTER_NAME}
    if sentinel_password:
        settings["CUTOUT_REDIS_SENTINEL_PASSWORD"] = sentinel_password
    try:
        proc, url = start_up(
            tmp_path / "data", free_port(), model_home, tmp_path / "up.log", **settings
        )
        try:
            children = descendants(proc)
            names = command_lines(proc.pid)
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
