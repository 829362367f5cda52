"""Webhook signing, checked against the reference ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.errors import Unavailable
from shared.net import webhooks
from shared.stores import webhooksecrets


def test_new_secret_shape() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert webhooks.new_secret() != secret


def test_sign_matches_the_definition() -> None:
    key = bytes(range(24))
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"type":"job.succeeded"}'
    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    ).decode()
    assert webhooks.sign(secret, "msg_1", 1700000000, body) == "v1," + expected


def test_reference_library_verifies_our_headers() -> None:
    secret = webhooks.new_secret()
    body = webhooks.event_body("job.succeeded", {"id": "job_x", "status": "succeeded"})
    msg_id = webhooks.new_message_id()
    sent = webhooks.headers(secret, msg_id, int(time.time()), body)
    assert set(sent) == {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
    assert sent["content-type"] == "application/json"
    assert sent["webhook-id"] == msg_id
    payload = Webhook(secret).verify(body, sent)
    assert payload["type"] == "job.succeeded"
    # the reference also accepts the secret without its prefix, and string bodies
    assert Webhook(secret.removeprefix("whsec_")).verify(body.decode(), sent)


def test_tampered_body_or_headers_fail() -> None:
    secret = webhooks.new_secret()
    body = webhooks.event_body("job.failed", {"id": "job_x"})
    sent = webhooks.headers(secret, "msg_a", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"job_x", b"job_y"), sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**sent, "webhook-id": "msg_b"})
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, sent)
    old = webhooks.headers(secret, "msg_a", int(time.time()) - 3600, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, old)  # outside the receiver's replay window


def test_non_ascii_bodies_verify() -> None:
    secret = webhooks.new_secret()
    body = webhooks.event_body("job.succeeded", {"metadata": {"name": "Bücher ✓"}})
    assert "Bücher ✓".encode() in body
    sent = webhooks.headers(secret, "msg_u", int(time.time()), body)
    assert Webhook(secret).verify(body, sent)["data"]["metadata"]["name"] == "Bücher ✓"


def test_event_body() -> None:
    now = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    body = webhooks.event_body("batch.completed", {"id": "bat_1"}, now=now)
    assert body == (
        b'{"type":"batch.completed","timestamp":"2024-05-01T12:30:15.123Z","data":{"id":"bat_1"}}'
    )
    assert json.loads(webhooks.event_body("job.failed", {}))["timestamp"].endswith("Z")
    with pytest.raises(ValueError, match="unknown webhook event"):
        webhooks.event_body("job.exploded", {})


def test_message_ids_unique_and_ordered() -> None:
    ids = [webhooks.new_message_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(i.startswith("msg_") and len(i) == 30 for i in ids)


def test_bad_secret_is_an_error() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        webhooks.sign("whsec_not base64!", "msg_1", 1, b"{}")


def test_a_signature_verifies_only_with_its_own_secret() -> None:
    # rotation hands out a new secret: what the old one signed must not verify with it
    # (the Redis-backed WebhookSecrets store is tested on a real Redis in
    # tests/integration/test_netguard_http.py and through the API in test_webhooks_e2e.py)
    old, new = webhooks.new_secret(), webhooks.new_secret()
    assert new != old
    body = webhooks.event_body("job.succeeded", {})
    sent = webhooks.headers(new, "msg_r", int(time.time()), body)
    assert Webhook(new).verify(body, sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, sent)


def test_secret_store_translates_redis_failures() -> None:
    import redis

    class Down:
        def get(self, *args: Any, **kwargs: Any) -> None:
            raise redis.ConnectionError("down")

        set = get

    store = webhooksecrets.WebhookSecrets(Down())  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        store.get_or_create("acme")
    with pytest.raises(Unavailable):
        store.rotate("acme")
