"""The API in-process (Flask test client) against the session's real Redis and SeaweedFS.

No worker runs here: these tests check what the API itself promises (validation, storage
of inputs, durable records, queued Celery messages, tenancy, uploads, errors). The jobs'
processing end to end is covered by the service tests with real worker processes.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from api.app import create_app
from api.openapi import HIDDEN_ATTR, openapi_path
from shared.contract.settings import Settings, load_settings
from shared.contract.shapes import public_job

KEY_A = "tenant-a-key-0123456789"
KEY_B = "tenant-b-key-0123456789"


@pytest.fixture
def api_redis_url(module_db: str) -> str:
    # a database of its own: no worker consumes these queues, and other tests' data stays apart
    return module_db


@pytest.fixture
def rdb(api_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(api_redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def make_settings(
    api_redis_url: str, s3_endpoint: str, s3_credentials: dict[str, str]
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        env = {
            "CUTOUT_REDIS_URL": api_redis_url,
            "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
            "CUTOUT_S3_BUCKET": "cutout-test",
        }
        return load_settings(env, **overrides)

    return make


@pytest.fixture
def app(make_settings: Callable[..., Settings], rdb: redis.Redis) -> Flask:
    return create_app(make_settings(), {"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def s3(s3_endpoint: str, s3_credentials: dict[str, str]) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=s3_credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_credentials["AWS_SECRET_ACCESS_KEY"],
    )


def png_bytes(size: tuple[int, int] = (8, 6), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width×height (the pixels are never there)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def submit(
    client: FlaskClient, data: bytes, headers: dict[str, str] | None = None, **fields: Any
) -> Any:
    form = {"image": (io.BytesIO(data), "photo.png"), **fields}
    return client.post(
        "/v1/jobs", data=form, content_type="multipart/form-data", headers=headers or {}
    )


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    return body


# -- POST /v1/jobs ---------------------------------------------------------------------


def test_submit_png_stores_input_record_and_queues_task(
    client: FlaskClient, app: Flask, rdb: redis.Redis, s3: Any
) -> None:
    data = png_bytes()
    response = submit(client, data, post_process="true", metadata='{"sku": "A-1"}')
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["options"]["post_process"] is True
    assert job["metadata"] == {"sku": "A-1"}
    assert set(job) >= {
        "id",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "options",
        "result",
        "error",
        "attempts",
        "batch_id",
        "metadata",
        "webhook",
    }

    stored = s3.get_object(Bucket="cutout-test", Key=f"inputs/public/{job['id']}/source")
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "image/png"

    record = app.extensions["cutout"].store.get_job(job["id"])
    assert record.status == "queued"
    assert record.tenant == "public"
    assert record.input_key == f"inputs/public/{job['id']}/source"
    assert record.source == {"kind": "upload"}
    assert record.queue == "interactive"
    assert public_job(record) == job

    assert rdb.llen("interactive") == 1
    message = json.loads(rdb.lindex("interactive", 0))
    assert message["headers"]["task"] == "cutout.process_job"
    assert message["headers"]["argsrepr"] == repr([job["id"]])

    polled = client.get(f"/v1/jobs/{job['id']}")
    assert polled.status_code == 200
    assert polled.get_json() == job


def test_unknown_and_malformed_ids_are_404(client: FlaskClient) -> None:
    assert_problem(client.get("/v1/jobs/job_0000000000000000000000000a"), 404, "not_found")
    assert_problem(client.get("/v1/jobs/not-an-id"), 404, "not_found")
    assert_problem(client.get("/v1/jobs/job_0000000000000000000000000a/result"), 404, "not_found")
    assert_problem(client.delete("/v1/jobs/whatever"), 404, "not_found")
    assert_problem(client.get("/v1/nothing-here"), 404, "not_found")


def test_text_file_is_unsupported_format(client: FlaskClient, rdb: redis.Redis) -> None:
    response = submit(client, b"hello, I am not an image\n" * 10)
    assert_problem(response, 415, "unsupported_format")
    assert rdb.llen("interactive") == 0


def test_empty_file_is_invalid_image(client: FlaskClient) -> None:
    assert_problem(submit(client, b""), 422, "invalid_image")


def test_truncated_header_is_invalid_image(client: FlaskClient) -> None:
    assert_problem(submit(client, png_bytes()[:20]), 422, "invalid_image")


def test_png_declaring_huge_dimensions_is_image_too_large(client: FlaskClient) -> None:
    assert_problem(submit(client, png_header_only(100_000, 100_000)), 422, "image_too_large")


def test_dimensions_over_settings_are_refused(
    make_settings: Callable[..., Settings], rdb: redis.Redis
) -> None:
    client = create_app(make_settings(max_pixels=1000, max_side=100)).test_client()
    body = assert_problem(submit(client, png_header_only(40, 40)), 422, "image_too_large")
    assert "1600" in body["detail"]
    assert_problem(submit(client, png_header_only(200, 2)), 422, "image_too_large")


def test_oversize_bodies_are_413(make_settings: Callable[..., Settings], rdb: redis.Redis) -> None:
    client = create_app(make_settings(max_upload_bytes=1000)).test_client()
    # the image part alone is over the limit, the envelope allowance is not exceeded
    big = png_bytes() + b"\x00" * 5000
    assert_problem(submit(client, big), 413, "payload_too_large")
    # the declared body is over limit + envelope: refused before it is read
    huge = b"\x00" * (1000 + 64 * 1024 + 1)
    response = client.post("/v1/jobs", data=huge, content_type="application/octet-stream")
    assert_problem(response, 413, "payload_too_large")
    assert rdb.llen("interactive") == 0


def test_bad_option_names_the_option(client: FlaskClient) -> None:
    body = assert_problem(submit(client, png_bytes(), model="nope"), 422, "invalid_option")
    assert body["option"] == "model"
    body = assert_problem(submit(client, png_bytes(), colour="red"), 422, "invalid_option")
    assert body["option"] == "colour"


def test_jpeg_without_bg_color_is_refused(client: FlaskClient) -> None:
    body = assert_problem(submit(client, png_bytes(), format="jpeg"), 422, "invalid_option")
    assert "bg_color" in body["detail"]
    ok = submit(client, png_bytes(), format="jpeg", bg_color="#ffffff")
    assert ok.status_code == 202
    assert ok.get_json()["options"]["bg_color"] == "#ffffffff"


def test_malformed_requests_are_400(client: FlaskClient) -> None:
    assert_problem(
        client.post("/v1/jobs", data="{nope", content_type="application/json"),
        400,
        "invalid_request",
    )
    assert_problem(client.post("/v1/jobs", json=[1, 2]), 400, "invalid_request")
    assert_problem(
        client.post("/v1/jobs", data="x", content_type="text/plain"), 400, "invalid_request"
    )
    missing = client.post(
        "/v1/jobs",
        data={"file": (io.BytesIO(png_bytes()), "a.png")},
        content_type="multipart/form-data",
    )
    body = assert_problem(missing, 400, "invalid_request")
    assert "image" in body["detail"]
    assert_problem(
        client.post("/v1/jobs", json={"upload_key": "x", "image_url": "http://a/"}),
        400,
        "invalid_request",
    )
    assert_problem(
        client.post("/v1/jobs", json={"image_url": "http://a/", "colour": 1}),
        400,
        "invalid_request",
    )
    assert_problem(submit(client, png_bytes(), metadata="[1]"), 400, "invalid_request")
    assert_problem(
        submit(client, png_bytes(), metadata=json.dumps({"x": "y" * 17000})), 400, "invalid_request"
    )


def test_image_url_job_is_queued_with_url_source(
    client: FlaskClient, app: Flask, rdb: redis.Redis
) -> None:
    response = client.post(
        "/v1/jobs",
        json={
            "image_url": "https://example.com/a.jpg",
            "options": {"model": "u2netp"},
            "webhook_url": "https://hooks.example.com/x",
            "metadata": {"n": 1},
        },
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    assert job["webhook"] == {
        "url": "https://hooks.example.com/x",
        "status": "pending",
        "attempts": 0,
    }
    record = app.extensions["cutout"].store.get_job(job["id"])
    assert record.source == {"kind": "url", "url": "https://example.com/a.jpg"}
    assert record.input_key is None
    assert rdb.llen("interactive") == 1
    assert_problem(
        client.post("/v1/jobs", json={"image_url": "file:///etc/passwd"}), 422, "url_not_allowed"
    )
    assert_problem(
        client.post("/v1/jobs", json={"image_url": "https://x/" + "a" * 3000}),
        422,
        "url_not_allowed",
    )
    # a literal private address is refused at once (names are checked by the worker)
    body = assert_problem(
        client.post("/v1/jobs", json={"image_url": "http://10.1.2.3/a.png"}),
        422,
        "url_not_allowed",
    )
    assert body["field"] == "image_url"
    hook_to_loopback = {"image_url": "http://a.example/", "webhook_url": "http://[::1]/hook"}
    body = assert_problem(client.post("/v1/jobs", json=hook_to_loopback), 422, "url_not_allowed")
    assert body["field"] == "webhook_url"
    assert rdb.llen("interactive") == 1


# -- result and delete -----------------------------------------------------------------


def test_result_of_queued_job_is_409(client: FlaskClient) -> None:
    job = submit(client, png_bytes()).get_json()
    body = assert_problem(client.get(f"/v1/jobs/{job['id']}/result"), 409, "not_finished")
    assert body["job_status"] == "queued"


def test_result_of_succeeded_job_streams_and_redirects(client: FlaskClient, app: Flask) -> None:
    """Plays the worker's part by hand: result bytes in storage, record succeeded."""
    services = app.extensions["cutout"]
    job = submit(client, png_bytes()).get_json()
    key = f"outputs/public/{job['id']}/result.png"
    output = png_bytes((8, 6), "RGBA")
    services.storage.put(key, output, "image/png")
    services.store.transition(job["id"], "processing", ["queued"])
    services.store.transition(
        job["id"],
        "succeeded",
        ["processing"],
        result={
            "url": f"/v1/jobs/{job['id']}/result",
            "key": key,
            "content_type": "image/png",
            "width": 8,
            "height": 6,
            "bytes": len(output),
        },
    )
    response = client.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 200
    assert response.data == output
    assert response.mimetype == "image/png"
    assert response.headers["Content-Disposition"] == f'inline; filename="{job["id"]}.png"'
    redirect = client.get(f"/v1/jobs/{job['id']}/result?redirect=1")
    assert redirect.status_code == 302
    with urllib.request.urlopen(redirect.headers["Location"]) as signed:
        assert signed.read() == output
    # deleting a finished job removes its bytes; the record stays
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert client.get(f"/v1/jobs/{job['id']}").get_json()["status"] == "succeeded"
    assert_problem(client.get(f"/v1/jobs/{job['id']}/result"), 404, "not_found")


def test_result_of_failed_job_is_409_with_error(client: FlaskClient, app: Flask) -> None:
    services = app.extensions["cutout"]
    job = submit(client, png_bytes()).get_json()
    services.store.transition(
        job["id"], "failed", ["queued"], error={"code": "invalid_image", "message": "broken"}
    )
    body = assert_problem(client.get(f"/v1/jobs/{job['id']}/result"), 409, "no_result")
    assert body["error"] == {"code": "invalid_image", "message": "broken"}


def test_delete_queued_job_cancels_and_removes_input(
    client: FlaskClient, app: Flask, s3: Any
) -> None:
    job = submit(client, png_bytes()).get_json()
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    polled = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert polled["status"] == "canceled"
    assert polled["finished_at"]
    listing = s3.list_objects_v2(Bucket="cutout-test", Prefix=f"inputs/public/{job['id']}/")
    assert listing.get("KeyCount", 0) == 0
    # the worker, if it still gets the message, finds the job canceled and does nothing
    store = app.extensions["cutout"].store
    assert not store.transition(job["id"], "processing", ["queued"]).applied
    # idempotent
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204


def test_delete_processing_job_is_409(client: FlaskClient, app: Flask) -> None:
    job = submit(client, png_bytes()).get_json()
    app.extensions["cutout"].store.transition(job["id"], "processing", ["queued"])
    assert_problem(client.delete(f"/v1/jobs/{job['id']}"), 409, "job_running")


# -- tenants ---------------------------------------------------------------------------


@pytest.fixture
def tenant_client(make_settings: Callable[..., Settings], rdb: redis.Redis) -> FlaskClient:
    settings = make_settings(api_keys={KEY_A: "tenant-a", KEY_B: "tenant-b"})
    return create_app(settings).test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_tenants_are_isolated(tenant_client: FlaskClient, s3: Any) -> None:
    client = tenant_client
    missing = assert_problem(
        client.get("/v1/jobs/job_0000000000000000000000000a"), 401, "unauthorized"
    )
    assert missing  # the problem body says how to authenticate
    response = client.get(
        "/v1/jobs/job_0000000000000000000000000a", headers=bearer("wrong-key-0123456789")
    )
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(client.post("/api/remove"), 401, "unauthorized")

    created = submit(client, png_bytes(), headers=bearer(KEY_A))
    assert created.status_code == 202
    job_id = created.get_json()["id"]
    assert s3.head_object(Bucket="cutout-test", Key=f"inputs/tenant-a/{job_id}/source")
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(KEY_A)).status_code == 200
    for method, path in (
        ("get", f"/v1/jobs/{job_id}"),
        ("get", f"/v1/jobs/{job_id}/result"),
        ("delete", f"/v1/jobs/{job_id}"),
    ):
        assert_problem(getattr(client, method)(path, headers=bearer(KEY_B)), 404, "not_found")
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(KEY_A)).get_json()["status"] == (
        "queued"
    )
    # health and docs need no key
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_public_bind_without_keys_refuses_to_start(make_settings: Callable[..., Settings]) -> None:
    from shared.contract.settings import SettingsError

    with pytest.raises(SettingsError, match="CUTOUT_API_KEYS"):
        create_app(make_settings(host="0.0.0.0"))
    create_app(make_settings(host="0.0.0.0", auth="off"))  # explicit: warns, starts
    create_app(make_settings(host="0.0.0.0", api_keys={KEY_A: "a"}))


# -- uploads ---------------------------------------------------------------------------


def put(url: str, data: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(request) as response:
        return int(response.status)


def test_upload_then_job_from_upload_key(
    tenant_client: FlaskClient, make_settings: Callable[..., Settings], rdb: redis.Redis
) -> None:
    client = tenant_client
    data = png_bytes()
    response = client.post(
        "/v1/uploads",
        json={"count": 2, "content_type": "image/png", "bytes": len(data)},
        headers=bearer(KEY_A),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    slots = response.get_json()
    assert len(slots) == 2
    slot = slots[0]
    assert slot["method"] == "PUT"
    assert slot["upload_key"].startswith("uploads/tenant-a/upl_")
    assert slot["headers"] == {"Content-Type": "image/png", "Content-Length": str(len(data))}
    assert slot["expires_at"].endswith("Z")
    assert put(slot["url"], data, slot["headers"]) == 200

    created = client.post(
        "/v1/jobs", json={"upload_key": slot["upload_key"]}, headers=bearer(KEY_A)
    )
    assert created.status_code == 202, created.get_data(as_text=True)
    job_id = created.get_json()["id"]
    app_store = create_app(make_settings()).extensions["cutout"].store
    assert app_store.get_job(job_id).input_key == slot["upload_key"]
    assert rdb.llen("interactive") == 1

    # another tenant's key: as if it did not exist
    assert_problem(
        client.post("/v1/jobs", json={"upload_key": slot["upload_key"]}, headers=bearer(KEY_B)),
        404,
        "not_found",
    )
    # a key of ours with nothing uploaded yet
    assert_problem(
        client.post("/v1/jobs", json={"upload_key": slots[1]["upload_key"]}, headers=bearer(KEY_A)),
        422,
        "upload_not_found",
    )


def test_upload_with_declared_size(client: FlaskClient) -> None:
    data = png_bytes()
    slot = client.post("/v1/uploads", json={"bytes": len(data)}).get_json()[0]
    assert slot["headers"]["Content-Length"] == str(len(data))
    assert put(slot["url"], data, {"Content-Type": slot["headers"]["Content-Type"]}) == 200
    response = client.post("/v1/jobs", json={"upload_key": slot["upload_key"]})
    assert response.status_code == 202
    assert_problem(client.post("/v1/uploads", json={"count": 101}), 400, "invalid_request")
    assert_problem(client.post("/v1/uploads", json={"bytes": 10**12}), 413, "payload_too_large")
    assert_problem(
        client.post("/v1/uploads", json={"content_type": "text/html"}), 400, "invalid_request"
    )


# -- operations ------------------------------------------------------------------------


def test_health_ready_metrics_openapi(client: FlaskClient, app: Flask) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_data(as_text=True)
    assert ready.get_json()["checks"] == {"redis": "ok", "storage": "ok"}

    submit(client, png_bytes())
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.mimetype == "text/plain"
    text = metrics.get_data(as_text=True)
    assert 'cutout_queue_depth{queue="interactive"} 1.0' in text
    assert 'cutout_jobs_created_total{model="u2net",queue="interactive"} 1.0' in text
    assert 'route="/v1/jobs",status="202"' in text

    document = client.get("/openapi.json").get_json()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        if getattr(app.view_functions[rule.endpoint], HIDDEN_ATTR, False):
            continue  # @not_an_operation: an error-only answer or an alias of a listed route
        path, _ = openapi_path(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], (method, path)


def test_readyz_names_what_is_down(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:1/0")
    response = create_app(settings).test_client().get("/readyz")
    body = assert_problem(response, 503, "unavailable")
    assert body["checks"] == {"redis": "unreachable", "storage": "ok"}


def test_redis_down_is_503_not_500(make_settings: Callable[..., Settings]) -> None:
    client = create_app(make_settings(redis_url="redis://127.0.0.1:1/0")).test_client()
    assert_problem(client.get("/v1/jobs/job_0000000000000000000000000a"), 503, "unavailable")


def _photo_form(field: str) -> dict[str, Any]:
    return {field: (io.BytesIO(png_bytes()), "in.png")}


SUBMISSIONS: dict[str, Callable[[FlaskClient], Any]] = {
    "job": lambda c: c.post("/v1/jobs", data=_photo_form("image")),
    "batch": lambda c: c.post(
        "/v1/batches", json={"items": [{"image_url": "https://example.com/a.png"}]}
    ),
    "rembg": lambda c: c.post("/api/remove", data=_photo_form("file")),
    "removebg": lambda c: c.post("/v1.0/removebg", data=_photo_form("image_file")),
}


@pytest.mark.parametrize("route", SUBMISSIONS)
def test_a_submission_while_redis_is_down_is_503_with_retry_after(
    make_settings: Callable[..., Settings], route: str
) -> None:
    """What a client that submits sees while the job store is unreachable (the window of a
    failover, before the Sentinels promote a replica): 503 ``unavailable`` with a
    Retry-After to wait, never a 500, on every route that takes work."""
    client = create_app(make_settings(redis_url="redis://127.0.0.1:1/0")).test_client()
    response = SUBMISSIONS[route](client)
    if route == "removebg":  # the drop-in answers in remove.bg's error shape
        assert response.status_code == 503
        (error,) = response.get_json()["errors"]
        assert error["code"] == "unavailable"
        assert "Redis" in error["title"]
    else:
        assert "Redis" in assert_problem(response, 503, "unavailable")["detail"]
    assert int(response.headers["Retry-After"]) >= 1


# -- /api/remove (the worker's part played by a thread; real workers: the service tests) --


def play_worker(app: Flask, rdb: redis.Redis, outcome: str) -> threading.Thread:
    """Finish the first queued job the way the worker would: succeed or fail it."""
    services = app.extensions["cutout"]

    def run() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for key in rdb.scan_iter("cutout:job:*"):
                if key.endswith(":done"):
                    continue
                job_id = key.rsplit(":", 1)[-1]
                if not services.store.transition(job_id, "processing", ["queued"]).applied:
                    continue
                if outcome == "fail":
                    services.store.transition(
                        job_id,
                        "failed",
                        ["processing"],
                        error={"code": "invalid_image", "message": "cannot decode"},
                    )
                    return
                out_key = f"outputs/public/{job_id}/result.png"
                services.storage.put(out_key, b"\x89PNG-result", "image/png")
                services.store.transition(
                    job_id,
                    "succeeded",
                    ["processing"],
                    result={
                        "url": f"/v1/jobs/{job_id}/result",
                        "key": out_key,
                        "content_type": "image/png",
                        "width": 8,
                        "height": 6,
                        "bytes": 12,
                    },
                )
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def remove(client: FlaskClient, **fields: Any) -> Any:
    form = {"file": (io.BytesIO(png_bytes()), "in.png"), **fields}
    return client.post("/api/remove", data=form, content_type="multipart/form-data")


def test_api_remove_answers_the_image(client: FlaskClient, app: Flask, rdb: redis.Redis) -> None:
    thread = play_worker(app, rdb, "succeed")
    response = remove(client, a="true", bgc="(255, 255, 255, 255)")
    thread.join()
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "image/png"
    assert response.data == b"\x89PNG-result"
    job = app.extensions["cutout"].store.get_job(response.headers["Cutout-Job-Id"])
    assert job.options["alpha_matting"] is True
    assert job.options["bg_color"] == "#ffffffff"


def test_api_remove_failure_carries_the_jobs_code(
    client: FlaskClient, app: Flask, rdb: redis.Redis
) -> None:
    thread = play_worker(app, rdb, "fail")
    response = remove(client)
    thread.join()
    body = assert_problem(response, 422, "invalid_image")
    assert body["detail"] == "cannot decode"


def test_api_remove_refuses_a_text_file_as_documented(client: FlaskClient) -> None:
    # 415 was answered but missing from the route's documented answers (and OpenAPI)
    form = {"file": (io.BytesIO(b"name,price\nchair,42\n" * 10), "notes.jpg")}
    response = client.post("/api/remove", data=form, content_type="multipart/form-data")
    assert_problem(response, 415, "unsupported_format")
    spec = client.get("/openapi.json").get_json()["paths"]["/api/remove"]
    assert "415" in spec["post"]["responses"]
    assert "415" in spec["get"]["responses"]


def test_api_remove_timeout_is_504_with_location(
    make_settings: Callable[..., Settings], rdb: redis.Redis
) -> None:
    client = create_app(make_settings(sync_timeout=0.3)).test_client()
    response = remove(client)
    assert_problem(response, 504, "processing_timeout")
    assert response.headers["Location"].startswith("/v1/jobs/job_")
    assert client.get(response.headers["Location"]).get_json()["status"] == "queued"


def test_api_remove_get_queues_a_url_job(
    make_settings: Callable[..., Settings], rdb: redis.Redis
) -> None:
    app = create_app(make_settings(sync_timeout=0.2))
    response = app.test_client().get("/api/remove?url=https://example.com/a.jpg&om=true")
    assert_problem(response, 504, "processing_timeout")
    job = app.extensions["cutout"].store.get_job(response.headers["Location"].rsplit("/", 1)[-1])
    assert job.source == {"kind": "url", "url": "https://example.com/a.jpg"}
    assert job.options["mask_only"] is True
    assert_problem(app.test_client().get("/api/remove"), 400, "invalid_request")
