"""Priorities: single jobs (queue ``interactive``) overtake batch items (queue ``bulk``).

ONE real `cutout worker` with concurrency 1, consuming ``interactive,bulk,webhooks`` with
the Redis transport's ``queue_order_strategy=priority``, on a Redis database of this
module's own. A 50-item batch is queued; once it is draining, one single job is
submitted; it must finish before the batch does, ahead of most of the batch's items.
Order only, never durations.
"""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from testkit.batch import AUTH_A, ImageServer, make_app, photo
from tests.integration.conftest import WorkerProcess, wait_for

ITEMS = 50
WORKER_ENV = {"CUTOUT_WORKER_CONCURRENCY": "1"}  # module_worker's, on module_db


def test_single_job_overtakes_a_queued_batch(
    module_db: str,
    s3_endpoint: str,
    s3_credentials: dict[str, str],
    module_worker: WorkerProcess,
    images: ImageServer,
) -> None:
    client: FlaskClient = make_app(module_db, s3_endpoint).test_client()
    items = [
        {"image_url": images.add(f"/p/{i}.jpg", photo((320, 240), i, "JPEG"))} for i in range(ITEMS)
    ]
    response = client.post(
        "/v1/batches", json={"items": items, "options": {"model": "u2netp"}}, headers=AUTH_A
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    batch_id = response.get_json()["id"]

    def counts() -> dict[str, int]:
        return client.get(f"/v1/batches/{batch_id}", headers=AUTH_A).get_json()["counts"]  # type: ignore[no-any-return]

    # the batch is draining: its items are in `bulk`, the worker is busy with them
    wait_for(lambda: counts()["succeeded"] >= 1, 180, 0.05)
    queued = counts()["queued"]
    assert queued >= ITEMS // 2, "the worker drained the batch too fast to test"
    single = client.post(
        "/v1/jobs",
        data={"image": (io.BytesIO(photo((320, 240), 99, "JPEG")), "s.jpg"), "model": "u2netp"},
        content_type="multipart/form-data",
        headers=AUTH_A,
    ).get_json()
    wait_for(
        lambda: (
            client.get(f"/v1/batches/{batch_id}", headers=AUTH_A).get_json()["status"]
            == "completed"
        ),
        600,
        0.5,
    )
    done = client.get(f"/v1/jobs/{single['id']}", headers=AUTH_A).get_json()
    assert done["status"] == "succeeded"
    store = client.application.extensions["cutout"].store
    batch_jobs = list(store.iter_batch_jobs(batch_id))
    assert len(batch_jobs) == ITEMS
    assert all(job.status == "succeeded" for job in batch_jobs)
    # RFC 3339 with milliseconds and Z: these strings sort as times
    finished = sorted(job.finished_at for job in batch_jobs)
    after = sum(1 for stamp in finished if stamp > done["finished_at"])
    assert done["finished_at"] < finished[-1]
    # it went next: the items still queued when it was submitted finished after it, but
    # for the one or two the worker took between our look at the counts and its arrival
    assert after >= queued - 2, (queued, after, finished, done["finished_at"])
