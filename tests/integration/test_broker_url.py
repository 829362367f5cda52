"""``CUTOUT_BROKER_URL``: Celery's queues on one redis-server, job records on another.

A real second ``redis-server`` (the broker), the session's Redis (a database of this
module's own) as the job store, a real ``cutout worker`` and a real ``cutout api`` both
given the two URLs. A job submitted over HTTP succeeds; its record lives only in the
store, the queue's keys only in the broker, and the API's readiness and queue depth read
the broker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.conftest import running_redis
from tests.integration.conftest import ApiProcess, WorkerProcess, http, running_api
from tests.integration.test_service import poll, submit
from tests.integration.test_worker import photo_bytes


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_redis(tmp_path_factory.mktemp("broker")) as url:
        yield url


@pytest.fixture(scope="module")
def store_url(module_db: str) -> str:
    return module_db


@pytest.fixture(scope="module")
def split_env(service_env: dict[str, str], store_url: str, broker_url: str) -> dict[str, str]:
    return dict(service_env, CUTOUT_REDIS_URL=store_url, CUTOUT_BROKER_URL=broker_url)


@pytest.fixture(scope="module")
def split_worker(
    start_worker: Callable[..., WorkerProcess], split_env: dict[str, str]
) -> Iterator[WorkerProcess]:
    worker = start_worker(
        {
            "CUTOUT_REDIS_URL": split_env["CUTOUT_REDIS_URL"],
            "CUTOUT_BROKER_URL": split_env["CUTOUT_BROKER_URL"],
            "CUTOUT_MODELS": "u2netp",
        }
    )
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def split_api(
    split_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    with running_api(split_env, tmp_path_factory.mktemp("split-api") / "api.log") as api:
        yield api


def test_job_succeeds_with_queues_and_records_on_two_redis_servers(
    split_api: ApiProcess, split_worker: WorkerProcess, store_url: str, broker_url: str
) -> None:
    job = submit(split_api.url, photo_bytes(), {"model": "u2netp"})
    finished, _ = poll(split_api.url, job["id"])
    assert finished["status"] == "succeeded", finished
    status, _, body = http("GET", f"{split_api.url}/v1/jobs/{job['id']}/result")
    assert status == 200
    assert body[:8] == b"\x89PNG\r\n\x1a\n"

    store = redis.Redis.from_url(store_url, decode_responses=True)
    broker = redis.Redis.from_url(broker_url, decode_responses=True)
    # the record in the store only; Celery's queue bindings in the broker only
    assert store.exists(f"cutout:job:{job['id']}")
    assert not broker.exists(f"cutout:job:{job['id']}")
    assert broker.exists("_kombu.binding.interactive")
    assert not list(store.scan_iter(match="_kombu.*"))
    assert not store.exists("unacked")
    assert not store.exists("interactive")

    # the API checks the broker too, and reads queue depths from it
    status, _, raw = http("GET", f"{split_api.url}/readyz")
    assert status == 200
    assert json.loads(raw)["checks"] == {"redis": "ok", "storage": "ok", "broker": "ok"}
    split_worker.stop()  # nothing consumes now: three waiting "messages", in the broker only
    broker.rpush("bulk", "x", "y", "z")
    try:
        status, _, raw = http("GET", f"{split_api.url}/metrics")
        assert status == 200
        assert 'cutout_queue_depth{queue="bulk"} 3.0' in raw.decode()
    finally:
        broker.delete("bulk")
