"""Real `cutout worker` processes on real Redis and S3: results, failures, crashes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shared.contract.options import parse_options
from shared.contract.settings import load_settings
from shared.contract.shapes.records import JobRecord
from shared.contract.tasks import enqueue_job, make_celery
from shared.ids import new_id, now_iso
from shared.s3.storage import input_key
from tests.integration.conftest import wait_for


def photo_bytes(size: tuple[int, int] = (480, 360)) -> bytes:
    """A product-like photo: a red disc on a light grey backdrop."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w, 3), 225, np.uint8)
    disc = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / 3) ** 2
    img[disc] = (200, 30, 40)
    out = io.BytesIO()
    Image.fromarray(img).save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="module")
def celery_app(service_env):
    return make_celery(load_settings(service_env))


def submit(
    store,
    storage,
    celery_app,
    data: bytes,
    options: dict,
    tenant: str = "t1",
    queue: str = "interactive",
) -> str:
    job_id = new_id("job")
    key = input_key(tenant, job_id)
    storage.put(key, data, "application/octet-stream")
    store.create_job(
        {
            "id": job_id,
            "tenant": tenant,
            "status": "queued",
            "created_at": now_iso(),
            "options": parse_options(options).stored(),
            "attempts": 0,
            "metadata": {},
            "input_key": key,
            "source": {"kind": "upload"},
            "queue": queue,
        }
    )
    enqueue_job(celery_app, job_id, queue)
    return job_id


def finished(store, job_id: str, timeout: float = 120) -> JobRecord:
    return wait_for(
        lambda: (j := store.get_job(job_id)) and j.status in ("succeeded", "failed") and j,
        timeout,
    )


def test_job_result_equals_local_engine(store, storage, celery_app, worker, model_home) -> None:
    from worker.engine import Engine

    data = photo_bytes()
    options = {"model": "u2netp", "bg_color": "#ffffff"}
    job = finished(store, submit(store, storage, celery_app, data, options))
    assert job.status == "succeeded", job
    assert job.attempts == 1
    stored = storage.get(job.result["key"])
    assert job.result["bytes"] == len(stored)
    assert job.result["content_type"] == "image/png"
    assert (job.result["width"], job.result["height"]) == (480, 360)
    local = Engine(model_home, threads=1).process(data, parse_options(options))
    ours = np.asarray(Image.open(io.BytesIO(stored)))
    theirs = np.asarray(Image.open(io.BytesIO(local.data)))
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_bad_image_fails_with_its_code(store, storage, celery_app, worker) -> None:
    job = finished(store, submit(store, storage, celery_app, b"this is not an image", {}))
    assert job.status == "failed"
    assert job.error["code"] == "unsupported_format"
    truncated = photo_bytes()[:600]
    job = finished(store, submit(store, storage, celery_app, truncated, {"model": "u2netp"}))
    assert job.status == "failed"
    assert job.error["code"] == "invalid_image"


def test_worker_killed_mid_job_is_replaced_and_job_completes(
    store, storage, celery_app, start_worker
) -> None:
    # a dedicated queue-consumer pair with a short time limit, so the sweep re-queues fast
    env = {"CUTOUT_TASK_TIME_LIMIT": "20"}
    first = start_worker(env, args=["--queues", "crashtest"])
    job_id = new_id("job")
    key = input_key("t1", job_id)
    storage.put(key, photo_bytes((1600, 1200)), "image/jpeg")
    store.create_job(
        {
            "id": job_id,
            "tenant": "t1",
            "status": "queued",
            "created_at": now_iso(),
            "options": parse_options({"model": "u2netp"}).stored(),
            "attempts": 0,
            "metadata": {},
            "input_key": key,
            "source": {"kind": "upload"},
            "queue": "crashtest",
        }
    )
    celery_app.send_task("cutout.process_job", args=[job_id], queue="crashtest")
    wait_for(lambda: store.get_job(job_id).status == "processing", 60, 0.02)
    first.kill()
    assert store.get_job(job_id).status == "processing"
    start_worker(env, args=["--queues", "crashtest"])
    job = finished(store, job_id, timeout=180)
    assert job.status == "succeeded", job
    assert job.attempts == 2
    # the stored result is the recorded one (once any copy of the killed run settles)
    wait_for(lambda: storage.head(job.result["key"])["bytes"] == job.result["bytes"], 30)
