"""``fast: true`` is refused at submit when no live worker serves fast mode, and accepted
once one does: real ``cutout worker`` processes advertise it in their heartbeat
(shared/telemetry.py), the API (in-process, real Redis and SeaweedFS) reads it.

The workers of this module run on a Redis database of their own, so the fast-mode
workers of test_fast.py (and the session's shared worker) are not counted here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from api.app import create_app
from shared import telemetry
from shared.settings import load_settings
from tests.corpus.make import encode, photo
from tests.integration.conftest import WorkerProcess, wait_for

URL_JOB = {"image_url": "http://127.0.0.1:9/a.png"}


def test_fast_jobs_follow_what_the_workers_serve(
    module_db: str,
    s3_endpoint: str,
    s3_credentials: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    model_home: Any,
) -> None:
    pytest.importorskip("openvino", reason="the fast extra is not installed")
    if not (model_home / "u2net-fast-int8-320.xml").is_file():
        pytest.skip("no fast model built (cutout models build-fast)")
    url = module_db
    r = redis.Redis.from_url(url)
    r.flushdb()
    settings = load_settings(
        {
            "CUTOUT_REDIS_URL": url,
            "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
            "CUTOUT_S3_BUCKET": "cutout-test",
            "CUTOUT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        }
    )
    client: FlaskClient = create_app(settings, {"TESTING": True}).test_client()

    def submit_fast() -> Any:
        return client.post("/v1/jobs", json={**URL_JOB, "options": {"fast": True}})

    def info_fast() -> bool:
        return bool(client.get("/v1/info").get_json()["fast"])

    # nobody alive to ask: accepted, it waits for a worker like every job
    assert submit_fast().status_code == 202
    assert info_fast() is True

    # a worker without fast mode (CUTOUT_FAST=off, as an install without the extra runs)
    plain = start_worker(
        {"CUTOUT_REDIS_URL": url, "CUTOUT_MODELS": "u2net", "CUTOUT_FAST": "off"},
        args=["--queues", "fastrefusal-plain"],
    )
    wait_for(lambda: telemetry.serves_fast(r) is False, timeout=180, interval=0.5)
    refused = submit_fast()
    assert refused.status_code == 422, refused.get_data(as_text=True)
    problem = refused.get_json()
    assert problem["code"] == "fast_mode_unavailable"
    assert problem["option"] == "fast"
    assert "/" not in problem["detail"].replace("/v1", "").split("(")[0]  # no server path
    assert info_fast() is False
    form = {"image": (io.BytesIO(encode(photo((32, 24)), "PNG")), "p.png"), "fast": "true"}
    multipart = client.post("/v1/jobs", data=form, content_type="multipart/form-data")
    assert multipart.get_json()["code"] == "fast_mode_unavailable"
    batch = client.post(
        "/v1/batches", json={"items": [URL_JOB, {**URL_JOB, "options": {"fast": True}}]}
    )
    assert batch.status_code == 422
    assert batch.get_json()["code"] == "fast_mode_unavailable"
    # jobs without fast are not affected
    assert client.post("/v1/jobs", json=URL_JOB).status_code == 202

    # a worker that serves fast mode joins: fast jobs are accepted again
    fast = start_worker(
        {"CUTOUT_REDIS_URL": url, "CUTOUT_MODELS": "u2net", "CUTOUT_FAST": "auto"},
        args=["--queues", "fastrefusal-fast"],
    )
    wait_for(lambda: telemetry.serves_fast(r) is True, timeout=300, interval=0.5)
    assert submit_fast().status_code == 202
    assert info_fast() is True
    for worker in (plain, fast):
        worker.stop()
