"""Webhooks end to end: the API in-process, a real `cutout worker` subprocess (retry
schedule 1,1,1 s), and a receiver on 127.0.0.1 that checks EVERY delivery with the
reference ``standardwebhooks`` package against the secret from GET /v1/webhooks/secret.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from testkit.batch import (
    AUTH_A,
    AUTH_B,
    ImageServer,
    Receiver,
    make_app,
    photo,
)
from tests.integration.conftest import WorkerProcess, wait_for

WORKER_ENV = {"CUTOUT_WEBHOOK_RETRY_SCHEDULE": "1,1,1"}  # module_worker's, on module_db


@pytest.fixture(scope="module")
def app(module_db: str, s3_endpoint: str, s3_credentials: dict[str, str]) -> Flask:
    return make_app(module_db, s3_endpoint)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def secret_of(client: FlaskClient, auth: dict[str, str] = AUTH_A) -> str:
    response = client.get("/v1/webhooks/secret", headers=auth)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["secret"]  # type: ignore[no-any-return]


def submit(client: FlaskClient, hook: str, data: bytes | None = None) -> dict[str, Any]:
    response = client.post(
        "/v1/jobs",
        data={
            "image": (io.BytesIO(data or photo()), "p.png"),
            "model": "u2netp",
            "webhook_url": hook,
        },
        content_type="multipart/form-data",
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def job_hook(client: FlaskClient, job_id: str) -> dict[str, Any]:
    return client.get(f"/v1/jobs/{job_id}", headers=AUTH_A).get_json()["webhook"]  # type: ignore[no-any-return]


def test_secret_is_per_tenant_and_rotates(client: FlaskClient) -> None:
    first = secret_of(client)
    assert first.startswith("whsec_")
    assert secret_of(client) == first
    other = secret_of(client, AUTH_B)
    assert other != first
    rotated = client.post("/v1/webhooks/secret/rotate", headers=AUTH_A)
    assert rotated.status_code == 200
    new = rotated.get_json()["secret"]
    assert new.startswith("whsec_")
    assert new != first
    assert secret_of(client) == new
    assert secret_of(client, AUTH_B) == other
    assert client.get("/v1/webhooks/secret").status_code == 401


def test_job_succeeded_after_two_failed_attempts(
    client: FlaskClient, module_worker: WorkerProcess, receiver: Receiver
) -> None:
    """500, 500, then 200: three deliveries of one event with one webhook-id, each one
    verifiable; the job's webhook ends delivered after 3 attempts."""
    receiver.plan["/flaky"] = [500, 500]
    job = submit(client, receiver.url("/flaky"))
    assert job["webhook"]["status"] == "pending"
    wait_for(lambda: job_hook(client, job["id"])["status"] == "delivered", 120, 0.2)
    secret = secret_of(client)
    deliveries = receiver.to("/flaky")
    assert [d.answered for d in deliveries] == [500, 500, 200]
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    for delivery in deliveries:
        payload = delivery.verify(secret)
        assert payload["type"] == "job.succeeded"
        assert payload["data"]["id"] == job["id"]
        assert payload["data"]["status"] == "succeeded"
        assert payload["data"]["result"]["content_type"] == "image/png"
        assert delivery.headers["content-type"] == "application/json"
    # the event's time is the job's: the same on every attempt
    assert len({d.json["timestamp"] for d in deliveries}) == 1
    hook = job_hook(client, job["id"])
    assert hook["attempts"] == 3
    assert hook["url"] == receiver.url("/flaky")
    assert hook["id"] == deliveries[0].headers["webhook-id"]
    # a signature does not verify with another secret (the check above is not vacuous)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_of(client, AUTH_B)).verify(deliveries[0].body, deliveries[0].headers)
    time.sleep(2)  # a further delivery after `delivered` would be a bug
    assert len(receiver.to("/flaky")) == 3


def test_job_failed_event(
    client: FlaskClient, module_worker: WorkerProcess, receiver: Receiver, images: ImageServer
) -> None:
    response = client.post(
        "/v1/jobs",
        json={
            "image_url": images.add("/broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
            "options": {"model": "u2netp"},
            "webhook_url": receiver.url("/failed"),
            "metadata": {"sku": "X"},
        },
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    wait_for(lambda: job_hook(client, job["id"])["status"] == "delivered", 120, 0.2)
    [delivery] = receiver.to("/failed")
    payload = delivery.verify(secret_of(client))
    assert payload["type"] == "job.failed"
    assert payload["data"]["status"] == "failed"
    assert payload["data"]["error"]["code"] == "invalid_image"
    assert payload["data"]["metadata"] == {"sku": "X"}


def test_delivery_gives_up_after_the_schedule(
    client: FlaskClient, module_worker: WorkerProcess, receiver: Receiver
) -> None:
    receiver.plan["/down"] = [503] * 10
    job = submit(client, receiver.url("/down"))
    wait_for(lambda: job_hook(client, job["id"])["status"] == "failed", 120, 0.2)
    deliveries = receiver.to("/down")
    # the first attempt and one retry per entry of the schedule (1,1,1)
    assert len(deliveries) == 4
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    secret = secret_of(client)
    for delivery in deliveries:
        delivery.verify(secret)
    hook = job_hook(client, job["id"])
    assert hook["attempts"] == 4
    assert hook["last_status"] == 503


def test_retries_after_rotation_carry_the_new_signature(
    client: FlaskClient, module_worker: WorkerProcess, receiver: Receiver
) -> None:
    receiver.plan["/rotate"] = [500, 500]
    # the first attempt is answered only after the rotation, so the retries come after it
    # however slowly this test runs
    receiver.held["/rotate"] = rotated = threading.Event()
    old = secret_of(client)
    job = submit(client, receiver.url("/rotate"))
    wait_for(lambda: receiver.to("/rotate"), 120, 0.1)
    new = client.post("/v1/webhooks/secret/rotate", headers=AUTH_A).get_json()["secret"]
    rotated.set()
    wait_for(lambda: job_hook(client, job["id"])["status"] == "delivered", 60, 0.2)
    # the first attempt was signed before the rotation, the retries after it
    first, *_, last = receiver.to("/rotate")
    assert len(receiver.to("/rotate")) == 3
    first.verify(old)
    last.verify(new)
    with pytest.raises(WebhookVerificationError):
        last.verify(old)


def test_batch_completed_once_with_batch_webhook(
    client: FlaskClient, module_worker: WorkerProcess, receiver: Receiver, images: ImageServer
) -> None:
    """A batch's webhook gets one batch.completed (items have no webhooks of their own),
    also when the receiver first fails."""
    receiver.plan["/batch"] = [500]
    items = [{"image_url": images.add(f"/b/{i}.png", photo(seed=i))} for i in range(5)]
    response = client.post(
        "/v1/batches",
        json={
            "items": items,
            "options": {"model": "u2netp"},
            "webhook_url": receiver.url("/batch"),
        },
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    batch_id = response.get_json()["id"]
    wait_for(
        lambda: (
            client.get(f"/v1/batches/{batch_id}", headers=AUTH_A).get_json()["webhook"]["status"]
            == "delivered"
        ),
        180,
        0.2,
    )
    time.sleep(2)  # a duplicate batch.completed would arrive in this window (none may)
    deliveries = receiver.to("/batch")
    assert [d.answered for d in deliveries] == [500, 200]
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    secret = secret_of(client)
    for delivery in deliveries:
        payload = delivery.verify(secret)
        assert payload["type"] == "batch.completed"
        assert payload["data"]["status"] == "completed"
        assert payload["data"]["counts"]["succeeded"] == 5
    page = client.get(f"/v1/batches/{batch_id}/jobs", headers=AUTH_A).get_json()
    assert all(job["webhook"] is None for job in page["items"])
