"""Security through the API on real Redis and SeaweedFS (and real `cutout api` processes
where the HTTP server itself matters): tenancy, the per-tenant rate limit and queue cap,
Idempotency-Key, the body limit before reading, the start-up refusal, signed URL expiry,
and secrets that never reach logs or error bodies.

No worker consumes this module's Redis database: queued jobs stay queued, which is what
the queue-cap tests need; where a finished job is needed, the worker's transition is
played through the store, exactly as the worker calls it.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from shared.contract.settings import Settings, load_settings
from shared.ids import now_iso
from shared.stores.jobs import tenant_active_key
from tests.conftest import ROOT
from tests.corpus.make import encode, multipart_body, normal_image, photo
from tests.integration.conftest import ApiProcess, http, running_api

KEY_A = "sec-tenant-a-key-0123456789"
KEY_B = "sec-tenant-b-key-0123456789"
KEYS = {KEY_A: "sec-a", KEY_B: "sec-b"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


A = bearer(KEY_A)
B = bearer(KEY_B)


@pytest.fixture
def db_url(module_db: str) -> str:
    return module_db  # no worker reads it


@pytest.fixture
def rdb(db_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(db_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def make_settings(
    db_url: str, s3_endpoint: str, s3_credentials: dict[str, str]
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        env = {
            "CUTOUT_REDIS_URL": db_url,
            "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
            "CUTOUT_S3_BUCKET": "cutout-test",
            "CUTOUT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        }
        overrides.setdefault("api_keys", KEYS)
        return load_settings(env, **overrides)

    return make


@pytest.fixture
def make_client(
    make_settings: Callable[..., Settings], rdb: redis.Redis
) -> Callable[..., FlaskClient]:
    def make(**overrides: Any) -> FlaskClient:
        return create_app(make_settings(**overrides), {"TESTING": True}).test_client()

    return make


@pytest.fixture
def client(make_client: Callable[..., FlaskClient]) -> FlaskClient:
    return make_client()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["code"] == code, body
    return body


def submit(client: FlaskClient, headers: dict[str, str], data: bytes | None = None, **fields: Any):  # type: ignore[no-untyped-def]
    image = png() if data is None else data
    form = {"image": (io.BytesIO(image), "photo.png"), "model": "u2netp", **fields}
    return client.post("/v1/jobs", data=form, content_type="multipart/form-data", headers=headers)


def png(size: tuple[int, int] = (32, 24)) -> bytes:
    return encode(photo(size), "PNG")


def has_route(client: FlaskClient, rule: str) -> bool:
    return any(r.rule == rule for r in client.application.url_map.iter_rules())


def finish(app: Flask, job_id: str, status: str = "succeeded") -> None:
    """What the worker does to a job, through the same store calls."""
    store = app.extensions["cutout"].store
    assert store.transition(job_id, "processing", ("queued",), attempts="+1").applied
    fields: dict[str, Any] = {"finished_at": now_iso()}
    if status == "succeeded":
        job = store.get_job(job_id)
        key = f"outputs/{job.tenant}/{job_id}/result.png"
        app.extensions["cutout"].storage.put(key, png(), "image/png")
        fields["result"] = {
            "url": f"/v1/jobs/{job_id}/result",
            "key": key,
            "content_type": "image/png",
            "width": 32,
            "height": 24,
            "bytes": len(png()),
        }
    else:
        fields["error"] = {"code": "invalid_image", "message": "test"}
    assert store.transition(job_id, status, ("processing",), **fields).applied


# -- tenancy -----------------------------------------------------------------------------


def test_tenant_b_cannot_reach_tenant_a_jobs_results_or_uploads(client: FlaskClient) -> None:
    job = submit(client, A).get_json()
    job_id = job["id"]
    finish(client.application, job_id)
    assert client.get(f"/v1/jobs/{job_id}/result", headers=A).status_code == 200
    for method, path in (
        ("get", f"/v1/jobs/{job_id}"),
        ("get", f"/v1/jobs/{job_id}/result"),
        ("get", f"/v1/jobs/{job_id}/result?redirect=1"),
        ("delete", f"/v1/jobs/{job_id}"),
    ):
        response = getattr(client, method)(path, headers=B)
        body = assert_problem(response, 404, "not_found")
        assert job_id not in json.dumps(body.get("detail", ""))  # nothing echoed about it
    # A's result is untouched by B's DELETE
    assert client.get(f"/v1/jobs/{job_id}/result", headers=A).status_code == 200

    # an upload key of A, used by B: 404 exactly like a key that never existed
    slot = client.post(
        "/v1/uploads", json={"content_type": "image/png", "bytes": len(png())}, headers=A
    ).get_json()[0]
    request = urllib.request.Request(
        slot["url"], data=png(), method="PUT", headers=slot.get("headers") or {}
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    assert slot["upload_key"].startswith("uploads/sec-a/")
    stolen = client.post(
        "/v1/jobs",
        json={"upload_key": slot["upload_key"], "options": {"model": "u2netp"}},
        headers=B,
    )
    assert_problem(stolen, 404, "not_found")
    forged = slot["upload_key"].replace("uploads/sec-a/", "uploads/sec-b/../sec-a/")
    assert_problem(
        client.post("/v1/jobs", json={"upload_key": forged}, headers=B), 404, "not_found"
    )
    own = client.post(
        "/v1/jobs",
        json={"upload_key": slot["upload_key"], "options": {"model": "u2netp"}},
        headers=A,
    )
    assert own.status_code == 202


def test_tenant_b_cannot_reach_tenant_a_batches(client: FlaskClient) -> None:
    if not has_route(client, "/v1/batches"):
        pytest.skip("POST /v1/batches is not registered in this checkout")
    form = {
        "images": [(io.BytesIO(png()), "a.png"), (io.BytesIO(png((20, 20))), "b.png")],
        "model": "u2netp",
    }
    created = client.post("/v1/batches", data=form, content_type="multipart/form-data", headers=A)
    assert created.status_code == 202, created.get_data(as_text=True)
    batch_id = created.get_json()["id"]
    for path in (
        f"/v1/batches/{batch_id}",
        f"/v1/batches/{batch_id}/jobs",
        f"/v1/batches/{batch_id}/results.zip",
    ):
        assert client.get(path, headers=A).status_code == 200, path
        assert_problem(client.get(path, headers=B), 404, "not_found")
    # nor the batch's jobs, one by one
    listed = client.get(f"/v1/batches/{batch_id}/jobs", headers=A).get_json()
    items = listed.get("jobs") or listed.get("items") or listed.get("data") or []
    assert items, listed
    for item in items:
        assert_problem(client.get(f"/v1/jobs/{item['id']}", headers=B), 404, "not_found")


def test_webhook_secrets_differ_per_tenant(client: FlaskClient) -> None:
    if not has_route(client, "/v1/webhooks/secret"):
        pytest.skip("GET /v1/webhooks/secret is not registered in this checkout")
    secret_a = client.get("/v1/webhooks/secret", headers=A).get_json()["secret"]
    secret_b = client.get("/v1/webhooks/secret", headers=B).get_json()["secret"]
    assert secret_a.startswith("whsec_")
    assert secret_b.startswith("whsec_")
    assert secret_a != secret_b
    rotated = client.post("/v1/webhooks/secret/rotate", headers=A).get_json()["secret"]
    assert rotated != secret_a
    assert client.get("/v1/webhooks/secret", headers=B).get_json()["secret"] == secret_b
    assert client.get("/v1/webhooks/secret").status_code == 401


def test_signed_result_urls_expire(client: FlaskClient) -> None:
    """A signed storage URL works while valid and is refused by SeaweedFS after it."""
    app = client.application
    job_id = submit(client, A).get_json()["id"]
    finish(app, job_id)
    redirect = client.get(f"/v1/jobs/{job_id}/result?redirect=1", headers=A)
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert "X-Amz-Expires=" in location
    assert "X-Amz-Signature=" in location
    with urllib.request.urlopen(location) as response:
        assert response.status == 200

    storage = app.extensions["cutout"].storage
    key = f"outputs/sec-a/{job_id}/result.png"
    # the signature's date is in whole seconds: a URL for 1 s may be stale when it is
    # signed, so the valid use gets several seconds and the sleep outlasts them
    short = storage.presign_get(key, expires=4)
    with urllib.request.urlopen(short) as response:
        assert response.status == 200
    time.sleep(5.5)  # past the expiry
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(short)
    assert refused.value.code == 403
    # a tampered signature is refused too
    tampered = location.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(tampered)
    assert bad.value.code == 403


# -- rate limit --------------------------------------------------------------------------


def test_rate_limit_per_tenant_with_headers(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(rate_limit=0.5, rate_burst=3)
    missing = "/v1/jobs/job_0000000000000000000000000a"
    remaining = []
    for _ in range(3):
        response = client.get(missing, headers=A)
        assert response.status_code == 404
        assert response.headers["RateLimit-Limit"] == "3"
        remaining.append(int(response.headers["RateLimit-Remaining"]))
        assert int(response.headers["RateLimit-Reset"]) >= 1
    assert remaining == [2, 1, 0]
    limited = client.get(missing, headers=A)
    body = assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert limited.headers["RateLimit-Limit"] == "3"
    assert "retry" in body["detail"]
    # another tenant has its own bucket
    assert client.get(missing, headers=B).status_code == 404
    # open routes are never limited and carry no RateLimit headers
    for path in ("/healthz", "/openapi.json", "/metrics"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "RateLimit-Limit" not in response.headers
    # a wrong key is 401, not a draw on anyone's bucket
    assert client.get(missing, headers=bearer("nobody-key-0123456789")).status_code == 401
    # after Retry-After, tokens are back
    time.sleep(int(limited.headers["Retry-After"]) + 0.2)
    assert client.get(missing, headers=A).status_code == 404


def test_rate_limit_is_shared_between_api_processes(
    make_client: Callable[..., FlaskClient],
) -> None:
    # two apps (two gunicorn processes, two machines) draw on one bucket per tenant
    one = make_client(rate_limit=0.1, rate_burst=4)
    two = make_client(rate_limit=0.1, rate_burst=4)
    codes = [c.get("/v1/jobs/job_x", headers=A).status_code for c in (one, two, one, two, one)]
    assert codes == [404, 404, 404, 404, 429]


# -- queue cap ---------------------------------------------------------------------------


def test_queue_cap_per_tenant(make_client: Callable[..., FlaskClient], rdb: redis.Redis) -> None:
    client = make_client(max_queued_per_tenant=2)
    first = submit(client, A).get_json()["id"]
    url_job = client.post(
        "/v1/jobs",
        json={"image_url": "http://127.0.0.1:9/a.png", "options": {"model": "u2netp"}},
        headers=A,
    )
    assert url_job.status_code == 202
    full = submit(client, A)
    body = assert_problem(full, 429, "queue_full")
    assert body["limit"] == 2
    assert body["queued"] == 2
    assert int(full.headers["Retry-After"]) >= 1
    # a refused request stored nothing and counted nothing
    assert rdb.scard(tenant_active_key("sec-a")) == 2
    full_url = client.post("/v1/jobs", json={"image_url": "http://127.0.0.1:9/b.png"}, headers=A)
    assert_problem(full_url, 429, "queue_full")
    # another tenant is not starved
    assert submit(client, B).status_code == 202
    # a job that finishes frees its place, in the same step as its transition
    finish(client.application, first, "failed")
    assert rdb.scard(tenant_active_key("sec-a")) == 1
    second = submit(client, A)
    assert second.status_code == 202
    # canceling a queued job frees its place too
    assert client.delete(f"/v1/jobs/{second.get_json()['id']}", headers=A).status_code == 204
    assert rdb.scard(tenant_active_key("sec-a")) == 1
    assert submit(client, A).status_code == 202
    # full again; a request that fails validation never holds a place (validated first)
    assert_problem(submit(client, A), 429, "queue_full")
    finish(client.application, url_job.get_json()["id"], "failed")
    assert_problem(submit(client, A, data=b"not an image"), 415, "unsupported_format")
    assert rdb.scard(tenant_active_key("sec-a")) == 1


def test_queue_cap_counts_batch_items(
    make_client: Callable[..., FlaskClient], rdb: redis.Redis
) -> None:
    client = make_client(max_queued_per_tenant=3)
    if not has_route(client, "/v1/batches"):
        pytest.skip("POST /v1/batches is not registered in this checkout")
    items = [{"image_url": f"http://127.0.0.1:9/{i}.png"} for i in range(4)]
    refused = client.post(
        "/v1/batches", json={"items": items, "options": {"model": "u2netp"}}, headers=A
    )
    assert_problem(refused, 429, "queue_full")
    assert rdb.scard(tenant_active_key("sec-a")) == 0  # all or nothing
    accepted = client.post(
        "/v1/batches", json={"items": items[:3], "options": {"model": "u2netp"}}, headers=A
    )
    assert accepted.status_code == 202, accepted.get_data(as_text=True)
    assert rdb.scard(tenant_active_key("sec-a")) == 3
    assert_problem(submit(client, A), 429, "queue_full")


def test_queue_cap_is_exact_under_concurrent_intake(
    make_client: Callable[..., FlaskClient], rdb: redis.Redis
) -> None:
    client = make_client(max_queued_per_tenant=5, rate_burst=100)
    app = client.application
    codes: list[int] = []
    lock = threading.Lock()

    def post() -> None:
        response = submit(app.test_client(), A)
        with lock:
            codes.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [202] * 5 + [429] * 7
    assert rdb.scard(tenant_active_key("sec-a")) == 5


# -- idempotency -------------------------------------------------------------------------


def test_idempotency_same_request_same_job(client: FlaskClient, rdb: redis.Redis) -> None:
    image = png()
    key = {"Idempotency-Key": "order-1234-photo-1", **A}
    first = submit(client, key, data=image)
    assert first.status_code == 202
    again = submit(client, key, data=image)  # a fresh multipart boundary each time
    assert again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert len(rdb.keys("cutout:job:job_*")) == 1
    # the same key with another body
    other = submit(client, key, data=png((40, 30)))
    assert_problem(other, 422, "idempotency_key_reused")
    # the same key for another tenant is another key
    theirs = submit(client, {"Idempotency-Key": "order-1234-photo-1", **B}, data=image)
    assert theirs.status_code == 202
    assert theirs.get_json()["id"] != first.get_json()["id"]
    # JSON bodies: key order and spacing do not matter, the content does
    body = {"image_url": "http://127.0.0.1:9/x.png", "options": {"model": "u2netp"}}
    headers = {"Idempotency-Key": "json-1", **A}
    one = client.post(
        "/v1/jobs", data=json.dumps(body), content_type="application/json", headers=headers
    )
    two = client.post(
        "/v1/jobs",
        data=json.dumps(dict(reversed(body.items())), indent=1),
        content_type="application/json",
        headers=headers,
    )
    assert one.status_code == two.status_code == 202
    assert one.get_json()["id"] == two.get_json()["id"]
    three = client.post("/v1/jobs", json={**body, "metadata": {"sku": 1}}, headers=headers)
    assert_problem(three, 422, "idempotency_key_reused")
    # the repeat shows the job as it is now
    finish(client.application, one.get_json()["id"], "failed")
    assert client.post("/v1/jobs", json=body, headers=headers).get_json()["status"] == "failed"


def test_idempotency_failed_request_gives_the_key_back(client: FlaskClient) -> None:
    headers = {"Idempotency-Key": "retry-after-fix", **A}
    assert_problem(submit(client, headers, data=b""), 422, "invalid_image")
    fixed = submit(client, headers)
    assert fixed.status_code == 202
    assert submit(client, headers).get_json()["id"] == fixed.get_json()["id"]
    assert_problem(
        submit(client, {"Idempotency-Key": "bad key with spaces", **A}), 400, "invalid_request"
    )


def test_idempotency_concurrent_duplicates_create_one_job(
    client: FlaskClient, rdb: redis.Redis
) -> None:
    app = client.application
    image = png((48, 32))
    ids: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def post() -> None:
        start.wait()
        response = submit(app.test_client(), {"Idempotency-Key": "race-1", **A}, data=image)
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 202:
                ids.append(response.get_json()["id"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [202] * 8
    assert len(set(ids)) == 1
    assert len(rdb.keys("cutout:job:job_*")) == 1


def test_idempotency_on_batches(client: FlaskClient, rdb: redis.Redis) -> None:
    if not has_route(client, "/v1/batches"):
        pytest.skip("POST /v1/batches is not registered in this checkout")
    body = {"items": [{"image_url": "http://127.0.0.1:9/1.png"}], "options": {"model": "u2netp"}}
    headers = {"Idempotency-Key": "batch-1", **A}
    first = client.post("/v1/batches", json=body, headers=headers)
    assert first.status_code == 202, first.get_data(as_text=True)
    again = client.post("/v1/batches", json=body, headers=headers)
    assert again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    other = client.post("/v1/batches", json={**body, "items": body["items"] * 2}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    # the key is scoped to the path: the same key on /v1/jobs is another key, and makes
    # a job of its own (it used to answer 422 idempotency_key_reused)
    job = submit(client, headers)
    assert job.status_code == 202, job.get_data(as_text=True)
    assert job.get_json()["id"].startswith("job_")
    again = submit(client, headers, data=png())
    assert again.get_json()["id"] == job.get_json()["id"]
    # and the batch's key still answers the batch
    assert (
        client.post("/v1/batches", json=body, headers=headers).get_json()["id"]
        == (first.get_json()["id"])
    )


# -- the real HTTP server: body limit before reading, start-up refusal, secrets in logs --


@pytest.fixture
def keyed_api(
    service_env: dict[str, str], tmp_path: Path, db_url: str, rdb: redis.Redis
) -> Iterator[ApiProcess]:
    env = dict(
        service_env,
        CUTOUT_REDIS_URL=db_url,
        CUTOUT_API_KEYS=",".join(f"{tenant}:{key}" for key, tenant in KEYS.items()),
        CUTOUT_MAX_UPLOAD_BYTES="2MB",
        CUTOUT_LOG_FORMAT="json",
        CUTOUT_LOG_LEVEL="debug",
    )
    # gunicorn starts slowly on a loaded 2-core machine
    with running_api(env, tmp_path / "api.log", timeout=180) as api:
        yield api


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """Send ``head`` (and ``body``) on a raw socket; the status and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head_bytes.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(head_bytes.split(b" ")[1]), rest


def test_huge_declared_body_is_413_before_it_is_sent(keyed_api: ApiProcess) -> None:
    """gunicorn + Flask answer from the Content-Length alone: no byte of body is sent."""
    for path, ctype in (
        ("/v1/jobs", "multipart/form-data; boundary=x"),
        ("/api/remove", "multipart/form-data; boundary=x"),
        ("/v1/uploads", "application/json"),
    ):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY_A}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: 50000000000\r\n\r\n"
        )
        status, body = raw_request(keyed_api.port, head)
        assert status == 413, body
        assert json.loads(body)["code"] == "payload_too_large"
    # without a key it is 401 first: nobody learns limits without authenticating
    status, body = raw_request(
        keyed_api.port,
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000000\r\n\r\n",
    )
    assert status == 401


def test_body_over_the_limit_that_is_sent_is_413(keyed_api: ApiProcess) -> None:
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(2_100_000)
    body, ctype = multipart_body({"model": "u2netp"}, {"image": ("big.png", big, "image/png")})
    status, _, answer = http("POST", keyed_api.url + "/v1/jobs", body, {"Content-Type": ctype, **A})
    assert status == 413
    assert json.loads(answer)["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_413(keyed_api: ApiProcess) -> None:
    """Without a Content-Length the body is cut off once it passes the limit."""
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(3_000_000)
    body, ctype = multipart_body({"model": "u2netp"}, {"image": ("big.png", big, "image/png")})
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY_A}\r\n"
        f"Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", keyed_api.port), timeout=60) as sock:
        sock.sendall(head.encode())
        try:
            for at in range(0, len(body), 65536):
                piece = body[at : at + 65536]
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"payload_too_large" in answer


def test_secrets_never_reach_logs_or_error_bodies(keyed_api: ApiProcess, rdb: redis.Redis) -> None:
    image = normal_image()
    marker = image[-64:]
    body, ctype = multipart_body({"model": "u2netp"}, {"image": ("p.jpg", image, "image/jpeg")})
    status, _, answer = http("POST", keyed_api.url + "/v1/jobs", body, {"Content-Type": ctype, **A})
    assert status == 202
    job_id = json.loads(answer)["id"]
    wrong = "sec-tenant-a-key-0123456780"  # one character off
    status, _, answer = http("GET", f"{keyed_api.url}/v1/jobs/{job_id}", None, bearer(wrong))
    assert status == 401
    assert wrong.encode() not in answer
    status, _, answer = http("GET", f"{keyed_api.url}/v1/jobs/{job_id}", None, B)
    assert status == 404
    if has_route(create_app_for_routes(), "/v1/webhooks/secret"):
        status, _, answer = http("GET", keyed_api.url + "/v1/webhooks/secret", None, A)
        assert status == 200
        secret = json.loads(answer)["secret"]
    else:
        secret = None
    keyed_api.stop()
    log = keyed_api.log_path.read_text(errors="replace")
    assert f"/v1/jobs/{job_id}" in log  # the access log is there...
    for key in KEYS:
        assert key not in log  # ...without any key
    assert wrong not in log
    assert "X-Amz-Signature" not in log
    if secret:
        assert secret not in log
        assert secret.removeprefix("whsec_") not in log
    assert marker.hex() not in log
    assert repr(marker)[2:-1] not in log


def create_app_for_routes() -> Any:
    """An app whose url_map says which routes this checkout has (connects to nothing)."""
    return create_app(
        load_settings({"CUTOUT_REDIS_URL": "redis://127.0.0.1:1/0"}), {"TESTING": True}
    ).test_client()


def test_public_bind_without_keys_refuses_to_start(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in service_env.items() if k != "CUTOUT_API_KEYS"}
    # refused before anything binds (were it not, the timeout below ends the test)
    env.update(CUTOUT_HOST="0.0.0.0", CUTOUT_PORT="1")
    done = subprocess.run(
        [sys.executable, "-m", "cutout", "api"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "CUTOUT_API_KEYS" in output
    assert "Traceback" not in output
