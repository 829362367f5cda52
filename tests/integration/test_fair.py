"""Fair sharing of ``bulk``: one tenant's big batch does not hold another's small one.

ONE real `cutout worker` (concurrency 1, u2netp) on a Redis database of this module's
own, with ``CUTOUT_BULK_WINDOW=2`` so that a 40-item batch is "large" at CI size.
Tenant ``a`` submits 40 items; once they are draining, tenant ``b`` submits 10. ``b``'s
batch must complete while ``a``'s still has items waiting (an outcome, not a timing),
and both must end with exact counts. Without the window every one of ``a``'s 40
messages sits in ``bulk`` ahead of ``b``'s 10, so ``a`` completes first.

The dispatcher itself (registration, the window per tenant, the lock) is driven by hand
in ``test_dispatcher_keeps_a_window_per_tenant``, on a database no worker reads.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

import redis
from flask.testing import FlaskClient

from testkit.batch import AUTH_A, AUTH_B, ImageServer, make_app, photo
from tests.conftest import RedisDatabases
from tests.integration.conftest import WorkerProcess, wait_for

BIG, SMALL = 40, 10
# module_worker's, consuming module_db
WORKER_ENV = {"CUTOUT_WORKER_CONCURRENCY": "1", "CUTOUT_BULK_WINDOW": "2"}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _submit(
    client: FlaskClient, images: ImageServer, auth: dict[str, str], tag: str, n: int
) -> str:
    items = [
        {"image_url": images.add(f"/{tag}/{i}.jpg", photo((64, 48), i, "JPEG"))} for i in range(n)
    ]
    response = client.post(
        "/v1/batches", json={"items": items, "options": {"model": "u2netp"}}, headers=auth
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def test_small_batch_of_another_tenant_finishes_before_a_big_one(
    module_db: str,
    s3_endpoint: str,
    s3_credentials: dict[str, str],
    module_worker: WorkerProcess,
    images: ImageServer,
) -> None:
    client = make_app(module_db, s3_endpoint).test_client()

    def batch(batch_id: str, auth: dict[str, str]) -> dict[str, Any]:
        return client.get(f"/v1/batches/{batch_id}", headers=auth).get_json()  # type: ignore[no-any-return]

    big = _submit(client, images, AUTH_A, "a", BIG)
    wait_for(lambda: batch(big, AUTH_A)["counts"]["succeeded"] >= 2, 180, 0.05)
    small = _submit(client, images, AUTH_B, "b", SMALL)

    small_done = wait_for(
        lambda: b if (b := batch(small, AUTH_B))["status"] == "completed" else None, 300, 0.05
    )
    big_then = batch(big, AUTH_A)
    # b's batch did not wait for a's: a still had items waiting when b's completed
    assert big_then["status"] == "running"
    assert big_then["counts"]["queued"] > 0, big_then["counts"]

    big_done = wait_for(
        lambda: b if (b := batch(big, AUTH_A))["status"] == "completed" else None, 600, 0.1
    )
    for done, total in ((small_done, SMALL), (big_done, BIG)):
        assert 0 <= done["counts"].pop("review") <= total
        assert done["counts"] == {
            "total": total,
            "queued": 0,
            "processing": 0,
            "succeeded": total,
            "failed": 0,
            "canceled": 0,
        }
    assert _epoch(small_done["finished_at"]) < _epoch(big_done["finished_at"])
    print(
        json.dumps(
            {
                "big_items": BIG,
                "small_items": SMALL,
                "small_s": round(
                    _epoch(small_done["finished_at"]) - _epoch(small_done["created_at"]), 1
                ),
                "big_s": round(_epoch(big_done["finished_at"]) - _epoch(big_done["created_at"]), 1),
            }
        )
    )


def test_dispatcher_keeps_a_window_per_tenant(
    redis_dbs: RedisDatabases, s3_endpoint: str, s3_credentials: dict[str, str]
) -> None:
    """Registration, the window per tenant, top-up as items finish, the lock: by hand."""
    from worker import batches, context, fair

    hand_db = redis_dbs.take()  # no worker reads it
    rdb = redis.Redis.from_url(hand_db, decode_responses=True)
    rdb.flushdb()
    app = make_app(hand_db, s3_endpoint)
    api = app.test_client()
    services = app.extensions["cutout"]
    items = [{"image_url": f"https://images.example.com/{i}.jpg"} for i in range(50)]
    a = api.post("/v1/batches", json={"items": items}, headers=AUTH_A).get_json()["id"]
    # the API queued the one enqueue task and no item
    assert rdb.llen("interactive") == 1
    assert rdb.llen("bulk") == 0

    saved = context._context
    settings = dataclasses.replace(services.settings, bulk_window=20)
    ctx = context.configure(settings, services.celery)
    try:
        assert batches._enqueue(ctx, a) == "registered"
        assert rdb.llen("bulk") == 20
        assert services.store.get_batch(a).enqueued == 20
        # redelivered: registers nothing new, and the window is full
        assert batches._enqueue(ctx, a) == "already-registered"
        assert rdb.llen("bulk") == 20
        # five items finish: five more go
        ids = services.store.batch_job_ids(a)
        for job_id in ids[:5]:
            assert services.store.transition(job_id, "succeeded", ("queued",)).applied
        dispatcher = fair.Dispatcher(ctx)
        assert dispatcher.dispatch() == 5
        # another tenant's batch gets a window of its own at once
        b = api.post("/v1/batches", json={"items": items[:30]}, headers=AUTH_B).get_json()["id"]
        assert batches._enqueue(ctx, b) == "registered"
        assert rdb.llen("bulk") == 45
        # one dispatcher at a time
        rdb.set(fair.LOCK_KEY, "someone-else", ex=60)
        for job_id in ids[5:10]:
            services.store.transition(job_id, "succeeded", ("queued",))
        assert dispatcher.dispatch() == 0
        rdb.delete(fair.LOCK_KEY)
        assert dispatcher.dispatch() == 5
        assert fair.pending(services.store) == (50 - 30) + (30 - 20)
    finally:
        context._context = saved
    sent = [json.loads(m)["headers"]["argsrepr"] for m in rdb.lrange("bulk", 0, -1)]
    b_ids = services.store.batch_job_ids(b)
    # a's first 30 items and b's first 20, each sent once
    assert sorted(sent) == sorted(repr([job_id]) for job_id in ids[:30] + b_ids[:20])
    rdb.close()
