"""Direct uploads (POST /v1/uploads) against the real SeaweedFS: the signed URL stores
exactly the declared size and nothing else, and uploads that no job uses are deleted
after the retention by the worker's retention sweep (``Scheduler.expire``, driven
directly here, as tests/faults/test_sweeper.py does).

No worker reads this module's Redis database.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from flask import Flask

from api.app import create_app
from shared.contract.settings import load_settings
from shared.errors import NotFound
from shared.stores.jobs import EXPIRY_KEY, upload_member
from shared.stores.workerstore import RedisWorkerStore
from tests.corpus.make import encode, photo
from tests.integration.conftest import wait_for
from worker.scheduler import Scheduler

LIMIT = 1_000_000


@pytest.fixture
def make_app(
    module_db: str, s3_endpoint: str, s3_credentials: dict[str, str]
) -> Callable[..., Flask]:
    url = module_db  # no worker reads it
    redis.Redis.from_url(url).flushdb()

    def make(**overrides: Any) -> Flask:
        env = {
            "CUTOUT_REDIS_URL": url,
            "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
            "CUTOUT_S3_BUCKET": "cutout-test",
        }
        overrides.setdefault("max_upload_bytes", LIMIT)
        return create_app(load_settings(env, **overrides), {"TESTING": True})

    return make


def put(url: str, data: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def stored_bytes(app: Flask, key: str) -> int | None:
    try:
        return int(app.extensions["cutout"].storage.head(key)["bytes"])
    except NotFound:
        return None


def test_an_upload_url_stores_exactly_the_signed_size(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client = app.test_client()
    data = encode(photo((64, 48)), "PNG")
    # without a size there is no URL: it could store anything (it stored 100 MB, 4x the limit)
    refused = client.post("/v1/uploads", json={"content_type": "image/png"})
    assert refused.status_code == 400
    assert refused.get_json()["code"] == "invalid_request"
    assert client.post("/v1/uploads", json={"bytes": LIMIT + 1}).status_code == 413
    assert client.post("/v1/uploads", json={"sizes": [10, LIMIT + 1]}).status_code == 413
    assert client.post("/v1/uploads", json={"sizes": [10, 0]}).status_code == 400
    assert client.post("/v1/uploads", json={"sizes": [10], "bytes": 10}).status_code == 400

    big, exact = client.post(
        "/v1/uploads", json={"sizes": [len(data), len(data)], "content_type": "image/png"}
    ).get_json()
    headers = {"Content-Type": "image/png"}
    # 4x the limit to a URL signed for a small file: SeaweedFS refuses it, stores nothing
    assert put(big["url"], os.urandom(4 * LIMIT), headers) == 403
    assert stored_bytes(app, big["upload_key"]) is None
    # one byte more or less: refused as well
    assert put(big["url"], data + b"\0", headers) == 403
    assert put(big["url"], data[:-1], headers) == 403
    assert stored_bytes(app, big["upload_key"]) is None
    # the declared size goes through, and a job takes it
    assert put(exact["url"], data, headers) == 200
    assert stored_bytes(app, exact["upload_key"]) == len(data)
    created = client.post("/v1/jobs", json={"upload_key": exact["upload_key"]})
    assert created.status_code == 202, created.get_data(as_text=True)


def test_unused_uploads_are_deleted_after_the_retention(make_app: Callable[..., Flask]) -> None:
    app = make_app(retention=2)
    services = app.extensions["cutout"]
    client = app.test_client()
    data = encode(photo((40, 30)), "PNG")
    unused, used = client.post("/v1/uploads", json={"bytes": len(data), "count": 2}).get_json()
    for slot in (unused, used):
        assert put(slot["url"], data, {"Content-Type": "application/octet-stream"}) == 200
    tenant = unused["upload_key"].split("/")[1]
    r = services.store.r
    issued = r.zscore(EXPIRY_KEY, upload_member(tenant, unused["upload_key"]))
    assert issued is not None
    assert issued == pytest.approx(time.time() + 2, abs=2)
    # a job that uses an upload moves the upload's deletion to the job's own expiry
    before = r.zscore(EXPIRY_KEY, upload_member(tenant, used["upload_key"]))
    created = client.post("/v1/jobs", json={"upload_key": used["upload_key"]})
    assert created.status_code == 202
    after = r.zscore(EXPIRY_KEY, upload_member(tenant, used["upload_key"]))
    assert after > before

    sweeper = Scheduler(
        SimpleNamespace(
            settings=services.settings,
            store=RedisWorkerStore.of(services.store),
            storage=services.storage,
            app=services.celery,
            _engine=None,
        )
    )

    def gone() -> bool:
        sweeper.expire()
        return stored_bytes(app, unused["upload_key"]) is None

    wait_for(gone, timeout=60, interval=0.5)
    # the upload entry itself is taken: nothing is left to sweep for it
    assert r.zscore(EXPIRY_KEY, upload_member(tenant, unused["upload_key"])) is None
