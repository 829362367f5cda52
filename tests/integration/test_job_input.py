"""``GET /v1/jobs/{id}/input``: the photo a job was made from, for the page's editor.

The API in-process on the session's real Redis and SeaweedFS; no worker is needed (the
input is stored when the job is accepted). The bytes come back as sent, typed from the
bytes themselves; another tenant's job, an unknown one and a deleted input are 404.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from testkit.batch import AUTH_A, AUTH_B, make_app, photo
from tests.conftest import RedisDatabases


@pytest.fixture(scope="module")
def client(redis_dbs: RedisDatabases, s3_endpoint: str, storage: Any) -> FlaskClient:
    # a database of this module's own, which no worker consumes: the jobs stay queued,
    # so deleting one is never raced by a worker taking it (409 job_running)
    storage.ensure_bucket()
    app: Flask = make_app(redis_dbs.take(), s3_endpoint)
    return app.test_client()


def submit(client: FlaskClient, data: bytes, name: str) -> str:
    response = client.post(
        "/v1/jobs",
        data={"image": (io.BytesIO(data), name), "model": "u2netp"},
        content_type="multipart/form-data",
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def test_the_owner_gets_the_input_as_sent(client: FlaskClient) -> None:
    for fmt, media_type in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
        data = photo((120, 90), seed=3, fmt=fmt)
        job_id = submit(client, data, f"photo.{fmt.lower()}")
        response = client.get(f"/v1/jobs/{job_id}/input", headers=AUTH_A)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_data() == data
        assert response.mimetype == media_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "no-store" in response.headers["Cache-Control"]


def test_other_tenants_unknown_jobs_and_deleted_inputs_are_not_found(
    client: FlaskClient,
) -> None:
    job_id = submit(client, photo((64, 48)), "photo.png")
    other = client.get(f"/v1/jobs/{job_id}/input", headers=AUTH_B)
    assert other.status_code == 404
    assert other.get_json()["code"] == "not_found"
    unknown = client.get("/v1/jobs/job_00000000000000000000000000/input", headers=AUTH_A)
    assert unknown.status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/input").status_code == 401
    # a queued job (no worker reads this database) can be deleted; its input goes with it
    assert client.get(f"/v1/jobs/{job_id}", headers=AUTH_A).get_json()["status"] == "queued"
    assert client.delete(f"/v1/jobs/{job_id}", headers=AUTH_A).status_code == 204
    gone = client.get(f"/v1/jobs/{job_id}/input", headers=AUTH_A)
    assert gone.status_code == 404, gone.get_data(as_text=True)
    assert gone.get_json()["code"] == "not_found"
