"""``fast: true`` is refused at submit when no live worker serves fast mode, and accepted
once one does, or will: real ``cutout worker`` processes advertise it in their heartbeat
(shared/stores/telemetry.py) as soon as they know they will load it, the API (in-process, real
Redis and SeaweedFS) reads it.

The workers of this module run on a Redis database of their own, so the fast-mode
workers of test_fast.py (and the session's shared worker) are not counted here.
"""

from __future__ import annotations

import fcntl
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from api.app import create_app
from shared.contract.settings import load_settings
from shared.stores import telemetry
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


def test_a_worker_still_loading_its_fast_model_takes_fast_jobs(
    module_db: str,
    s3_endpoint: str,
    s3_credentials: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    model_home: Any,
    tmp_path: Path,
) -> None:
    """Between a worker's first heartbeat and its fast model being loaded, a fast job
    is accepted (202; it was 422 fast_mode_unavailable) and succeeds once the model is
    there. The loading is held open here by the build's own lock file: the worker
    (CUTOUT_FAST=build, a model folder without the fast model) waits on it, as it
    waits while another process builds; the test then puts the built model in place
    and lets go."""
    pytest.importorskip("openvino", reason="the fast extra is not installed")
    from worker.engine.fast import fast_paths

    built = fast_paths(model_home)
    if not all(path.is_file() for path in built):
        pytest.skip("no fast model built (cutout models build-fast)")
    url = module_db
    r = redis.Redis.from_url(url)
    r.flushdb()
    home = tmp_path / "models"
    home.mkdir()
    for name in ("u2net.onnx", "u2netp.onnx"):
        (home / name).symlink_to(model_home / name)
    lock = open(home / f".{built[0].stem}.lock", "a")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        worker = start_worker(
            {
                "CUTOUT_REDIS_URL": url,
                "CUTOUT_MODELS": "u2net",
                "CUTOUT_FAST": "build",
                "CUTOUT_MODEL_HOME": str(home),
            }
        )
        wait_for(lambda: telemetry.serves_fast(r) is True, timeout=180, interval=0.2)
        (beat,) = telemetry.workers(r)
        assert beat["fast_state"] == "loading"
        settings = load_settings(
            {
                "CUTOUT_REDIS_URL": url,
                "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
                "CUTOUT_S3_BUCKET": "cutout-test",
            }
        )
        client: FlaskClient = create_app(settings, {"TESTING": True}).test_client()
        form = {"image": (io.BytesIO(encode(photo((64, 48)), "PNG")), "p.png"), "fast": "true"}
        accepted = client.post("/v1/jobs", data=form, content_type="multipart/form-data")
        assert accepted.status_code == 202, accepted.get_data(as_text=True)
        job_id = accepted.get_json()["id"]
        for path in built:  # what the build would write; the worker reads it after the lock
            shutil.copy2(path, home / path.name)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()

    def done() -> Any:
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        return job if job["status"] in ("succeeded", "failed") else None

    job = wait_for(done, timeout=300, interval=0.5)
    assert job["status"] == "succeeded", job
    wait_for(lambda: telemetry.workers(r)[0]["fast_state"] == "available", 120, 0.5)
    worker.stop()
