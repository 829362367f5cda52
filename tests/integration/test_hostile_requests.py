"""The hostile-request corpus (tests/corpus/make.py: REQUEST_CASES, raw_cases) against
the API: deeply nested JSON, lone surrogates, oversized metadata, chunked bodies over the
limit, and requests that gunicorn itself refuses before Flask.

Every answer is problem+json with the stated status and code, never a 500 and never
HTML. The in-process cases use the Flask app on the session's real Redis and SeaweedFS;
the raw ones go over a socket to a real ``cutout api`` (gunicorn). No worker reads this
module's Redis database: nothing here should ever be queued.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from api.app import MULTIPART_ENVELOPE, create_app
from shared.contract.settings import load_settings
from tests.corpus.make import REQUEST_CASES, RawCase, RequestCase, raw_cases
from tests.integration.conftest import ApiProcess, running_api

MAX_UPLOAD = 1_000_000  # the real server's CUTOUT_MAX_UPLOAD_BYTES


@pytest.fixture(scope="module")
def db_url(module_db: str) -> str:
    return module_db  # no worker reads it


@pytest.fixture(scope="module")
def client(db_url: str, s3_endpoint: str, s3_credentials: dict[str, str]) -> FlaskClient:
    settings = load_settings(
        {
            "CUTOUT_REDIS_URL": db_url,
            "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
            "CUTOUT_S3_BUCKET": "cutout-test",
            "CUTOUT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        }
    )
    return create_app(settings, {"TESTING": True}).test_client()


def check_answer(case: RequestCase, status: int, mimetype: str, body: bytes) -> None:
    assert status == case.status, (case.name, status, body[:300])
    assert mimetype == "application/problem+json", (case.name, mimetype)
    problem = json.loads(body)
    assert problem["code"] == case.code, (case.name, problem)
    assert {"type", "title", "status", "detail", "code"} <= set(problem)


@pytest.mark.parametrize("case", REQUEST_CASES, ids=lambda c: c.name)
def test_hostile_request_gets_its_problem(
    client: FlaskClient, case: RequestCase, db_url: str
) -> None:
    data, ctype = case.build()
    for headers in ({}, {"Idempotency-Key": f"hostile-{case.name}"}):
        # with a key the body is fingerprinted first: that path must hold as well
        response = client.post(case.path, data=data, content_type=ctype, headers=headers)
        check_answer(case, response.status_code, response.mimetype, response.data)
    # nothing was created
    assert not redis.Redis.from_url(db_url).keys("cutout:job:*")


# -- a real gunicorn: its own refusals and chunked bodies --------------------------------


@pytest.fixture(scope="module")
def small_api(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, db_url: str
) -> Iterator[ApiProcess]:
    env = dict(service_env, CUTOUT_REDIS_URL=db_url, CUTOUT_MAX_UPLOAD_BYTES=str(MAX_UPLOAD))
    with running_api(env, tmp_path_factory.mktemp("hostile-api") / "api.log", 180) as api:
        yield api


def send_raw(port: int, case: RawCase) -> bytes:
    """Send the case on a socket; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall(case.head + case.body)
            if case.chunked_json_bytes:
                sock.sendall(b"10000\r\n" + b"[" + b" " * 0xFFFF + b"\r\n")
                sent = 0x10000
                while sent < case.chunked_json_bytes:
                    sock.sendall(b"10000\r\n" + b" " * 0x10000 + b"\r\n")
                    sent += 0x10000
                sock.sendall(b"1\r\n]\r\n0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before everything was sent
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if answer.count(b"\r\n\r\n") and _complete(answer):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


@pytest.mark.parametrize("case", raw_cases(MAX_UPLOAD + MULTIPART_ENVELOPE), ids=lambda c: c.name)
def test_raw_request_gets_problem_json_from_the_real_server(
    small_api: ApiProcess, case: RawCase
) -> None:
    answer = send_raw(small_api.port, case)
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0]
    assert status_line.startswith(f"HTTP/1.1 {case.status} ".encode()), answer[:300]
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    }
    assert headers[b"content-type"].startswith(b"application/problem+json"), head
    problem = json.loads(body)
    assert problem["code"] == case.code, problem
    assert problem["status"] == case.status
    assert b"<html" not in body


def test_server_log_has_no_traceback(small_api: ApiProcess) -> None:
    # after the cases above ran on the same server
    log = Path(small_api.log_path).read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def test_removebg_endpoint_bounds_its_json_too(client: FlaskClient) -> None:
    """/v1.0/removebg answers remove.bg's error shape, not problem+json; deep JSON is
    its 400 like everywhere else (it was a 500)."""
    data, ctype = REQUEST_CASES[0].build()  # 100,000 levels of arrays
    response = client.post("/v1.0/removebg", data=data, content_type=ctype)
    assert response.status_code == 400, response.data[:300]
    assert response.get_json()["errors"][0]["code"] == "invalid_request"
