"""The operator's view: metrics, readiness with worker heartbeats, retention."""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace

import pytest

from shared.contract.settings import load_settings
from shared.ids import new_id, now_iso
from shared.s3.storage import input_key, output_key
from shared.stores.workerstore import RedisWorkerStore
from tests.integration.conftest import http, wait_for
from tests.integration.test_service import poll, submit
from tests.integration.test_worker import photo_bytes
from worker.scheduler import Scheduler


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_and_readiness_report_workers_and_jobs(api_server, worker) -> None:
    job = submit(api_server.url, photo_bytes(), {"model": "u2netp"})
    finished, _ = poll(api_server.url, job["id"])
    assert finished["status"] == "succeeded"

    status, _, raw = http("GET", f"{api_server.url}/readyz")
    assert status == 200
    ready = json.loads(raw)
    assert ready["checks"] == {"redis": "ok", "storage": "ok"}
    workers = wait_for(
        lambda: (
            json.loads(http("GET", f"{api_server.url}/readyz")[2])["workers"]
            if json.loads(http("GET", f"{api_server.url}/readyz")[2])["workers"]["alive"]
            else None
        ),
        30,
    )
    assert workers["alive"] >= 1
    # other modules' workers share this database; one still warming up reports no
    # providers yet, so the check is that a ready one reports its own
    assert any(
        d["providers"] == ["CPUExecutionProvider"] and d["rss_bytes"] > 50_000_000
        for d in workers["details"]
    ), workers["details"]

    status, _, raw = http("GET", f"{api_server.url}/metrics")
    assert status == 200
    text = raw.decode()
    assert metric(text, "cutout_jobs_finished_total", model="u2netp", status="succeeded") >= 1
    assert metric(text, "cutout_stage_seconds_count", stage="inference") >= 1
    assert metric(text, "cutout_workers_alive") >= 1
    assert re.search(r'cutout_queue_depth\{queue="bulk"\} \d', text)
    assert (
        metric(text, "cutout_http_requests_total", method="POST", route="/v1/jobs", status="202")
        >= 1
    )


def test_retention_deletes_records_and_stored_bytes(redis_url, storage, service_env) -> None:
    settings = load_settings(service_env)
    # 5 s: long enough that no sweeper (ours or a running worker's) can reach the job
    # before the first check below, even on a loaded machine
    store = RedisWorkerStore.from_url(redis_url, retention=5)
    job_id = new_id("job")
    in_key, out_key = input_key("t9", job_id), output_key("t9", job_id, "png")
    storage.put(in_key, b"input", "image/jpeg")
    storage.put(out_key, b"output", "image/png")
    store.create_job(
        {
            "id": job_id,
            "tenant": "t9",
            "status": "succeeded",
            "created_at": now_iso(),
            "input_key": in_key,
        }
    )
    ctx = SimpleNamespace(settings=settings, store=store, storage=storage, app=None, _engine=None)
    sweeper = Scheduler(ctx)
    # before expiry nothing of this job is removed
    sweeper.expire()
    assert storage.head(in_key)["bytes"] == 5
    time.sleep(6.1)
    assert store.get_job(job_id) is None
    # this sweeper or a running worker's (both run the same code) deletes them; the
    # other one may still be in the middle of it when ours finds nothing left to take
    sweeper.expire()
    from shared.errors import NotFound

    def gone(key: str) -> bool:
        try:
            storage.get(key)
        except NotFound:
            return True
        return False

    wait_for(lambda: gone(in_key) and gone(out_key), 30)


def test_retention_keeps_what_storage_could_not_delete_and_deletes_it_later(
    redis_dbs, storage, service_env
) -> None:
    """Storage down during a retention pass: the expired entries go back to the expiry
    set, and the next pass, with storage back, deletes the objects (popped and dropped,
    they were kept forever)."""
    from cutout.stack import free_port
    from shared.errors import CutoutError, NotFound
    from shared.s3.storage import S3Storage
    from shared.stores.jobs import EXPIRY_KEY

    settings = load_settings(service_env)
    store = RedisWorkerStore.from_url(redis_dbs.take(), retention=1)  # no worker reads it
    store.r.flushdb()
    keys = []
    for _ in range(3):
        job_id = new_id("job")
        in_key = input_key("t8", job_id)
        storage.put(in_key, b"input", "image/jpeg")
        keys.append(in_key)
        store.create_job(
            {
                "id": job_id,
                "tenant": "t8",
                "status": "succeeded",
                "created_at": now_iso(),
                "input_key": in_key,
            }
        )
    due_now = dict.fromkeys(store.r.zrange(EXPIRY_KEY, 0, -1), 0)
    assert len(due_now) == 3
    store.r.zadd(EXPIRY_KEY, due_now)
    # nothing listens on this port: every delete fails as a stopped S3 server does
    down = S3Storage(
        f"http://127.0.0.1:{free_port()}", "cutout-test", connect_timeout=1, max_attempts=1
    )
    ctx = SimpleNamespace(settings=settings, store=store, storage=down, app=None, _engine=None)
    with pytest.raises(CutoutError):  # the pass fails; the scheduler's loop logs it
        Scheduler(ctx).expire()
    assert store.r.zcard(EXPIRY_KEY) == 3
    assert all(storage.head(key)["bytes"] == 5 for key in keys)

    assert set(store.r.zrange(EXPIRY_KEY, 0, -1)) == set(due_now)  # the same entries
    store.r.zadd(EXPIRY_KEY, due_now)  # due again now rather than in a minute
    ctx.storage = storage
    assert Scheduler(ctx).expire() >= 3
    assert store.r.zcard(EXPIRY_KEY) == 0
    for key in keys:
        try:
            storage.get(key)
        except NotFound:
            continue
        raise AssertionError(f"{key} was kept after its retention")
