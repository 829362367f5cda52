"""Trust boundaries of a server without API keys (api/trust.py), on real Redis and
SeaweedFS: loopback Host names only (DNS rebinding), no cross-site requests with side
effects (CSRF), no webhook secret without a key, and /readyz details only for callers
with a key or on this machine. The rebinding case also runs against a real ``cutout api``.

No worker reads this module's Redis database: accepted jobs stay queued.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from api.app import create_app
from shared.contract.settings import Settings, load_settings
from shared.stores import telemetry
from tests.corpus.make import encode, photo
from tests.integration.conftest import http, running_api

KEY = "trust-tenant-key-0123456789"


@pytest.fixture
def db_url(module_db: str) -> Iterator[str]:
    url = module_db  # no worker reads it
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.close()


@pytest.fixture
def make_client(
    db_url: str, s3_endpoint: str, s3_credentials: dict[str, str]
) -> Callable[..., FlaskClient]:
    def make(**overrides: Any) -> FlaskClient:
        env = {
            "CUTOUT_REDIS_URL": db_url,
            "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
            "CUTOUT_S3_BUCKET": "cutout-test",
            "CUTOUT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        }
        settings: Settings = load_settings(env, **overrides)
        return create_app(settings, {"TESTING": True}).test_client()

    return make


def form() -> dict[str, Any]:
    return {"image": (io.BytesIO(encode(photo((32, 24)), "PNG")), "p.png"), "model": "u2netp"}


def post_job(client: FlaskClient, headers: dict[str, str]) -> Any:
    return client.post("/v1/jobs", data=form(), content_type="multipart/form-data", headers=headers)


def code_of(response: Any) -> str | None:
    if response.mimetype != "application/problem+json":
        return None
    return str(response.get_json(force=True)["code"])


def test_keyless_server_answers_only_loopback_host_names(
    make_client: Callable[..., FlaskClient],
) -> None:
    client = make_client()
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", "10.0.0.5"):
        for method, path in (
            ("get", "/v1/webhooks/secret"),
            ("get", "/readyz"),
            ("get", "/"),
            ("get", "/v1/info"),
        ):
            response = getattr(client, method)(path, headers={"Host": host})
            assert response.status_code == 403, (host, path, response.status_code)
            assert code_of(response) == "host_not_allowed"
        refused = post_job(client, {"Host": host})
        assert refused.status_code == 403
        assert code_of(refused) == "host_not_allowed"
    for host in ("localhost", "localhost:8080", "127.0.0.1:1234", "[::1]:8080", "app.localhost"):
        assert client.get("/v1/info", headers={"Host": host}).status_code == 200, host
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    assert post_job(client, {"Host": "127.0.0.1:8080"}).status_code == 202


def test_keyless_server_refuses_cross_site_requests_with_side_effects(
    make_client: Callable[..., FlaskClient], db_url: str
) -> None:
    client = make_client()
    host = {"Host": "127.0.0.1:8080"}
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:3000"},  # another local page: another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    ):
        response = post_job(client, {**host, **headers})
        assert response.status_code == 403, headers
        assert code_of(response) == "cross_site_request"
        cancel = client.delete(
            "/v1/jobs/job_0000000000000000000000000a", headers={**host, **headers}
        )
        assert code_of(cancel) == "cross_site_request"
    assert not redis.Redis.from_url(db_url).keys("cutout:job:*")
    # the page itself (same origin) and clients that are not browsers pass
    same = {"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}
    assert post_job(client, {**host, **same}).status_code == 202
    assert post_job(client, host).status_code == 202
    assert post_job(client, {**host, "Sec-Fetch-Site": "none"}).status_code == 202
    # reading is not a side effect (and no CORS header lets another site read the answer)
    read = client.get("/v1/info", headers={**host, "Origin": "http://evil.example"})
    assert read.status_code == 200
    assert "Access-Control-Allow-Origin" not in read.headers


def test_webhook_secret_is_never_given_without_a_key(
    make_client: Callable[..., FlaskClient],
) -> None:
    keyless = make_client()
    for method, path in (("get", "/v1/webhooks/secret"), ("post", "/v1/webhooks/secret/rotate")):
        response = getattr(keyless, method)(path)
        assert response.status_code == 403
        assert code_of(response) == "api_key_required"
        assert "whsec_" not in response.get_data(as_text=True)
    keyed = make_client(api_keys={KEY: "trust"})
    response = keyed.get("/v1/webhooks/secret", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert response.get_json()["secret"].startswith("whsec_")
    # with keys the Host is not judged: the key is what protects
    assert (
        keyed.get(
            "/v1/info", headers={"Host": "api.example.com", "Authorization": f"Bearer {KEY}"}
        ).status_code
        == 200
    )


def test_readyz_details_only_for_callers_with_a_key_or_local(
    make_client: Callable[..., FlaskClient], db_url: str
) -> None:
    telemetry.heartbeat(
        redis.Redis.from_url(db_url),
        "worker-host-a:4242",
        {"host": "worker-host-a", "pid": 4242, "rss_bytes": 123_456_789},
    )

    def ready(client: FlaskClient, **kwargs: Any) -> dict[str, Any]:
        response = client.get("/readyz", **kwargs)
        assert response.status_code == 200
        return response.get_json()["workers"]  # type: ignore[no-any-return]

    keyed = make_client(api_keys={KEY: "trust"})
    anonymous = ready(keyed, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert anonymous == {"alive": 1, "consuming": 0}
    assert "worker-host-a" not in json.dumps(anonymous)
    # a loopback caller without a key behind a keyed server learns no more
    assert ready(keyed) == {"alive": 1, "consuming": 0}
    with_key = ready(keyed, headers={"Authorization": f"Bearer {KEY}"})
    assert with_key["details"][0]["host"] == "worker-host-a"
    assert with_key["details"][0]["pid"] == 4242
    wrong_key = ready(keyed, headers={"Authorization": "Bearer not-a-key-0123456789"})
    assert "details" not in wrong_key
    # keyless: a caller on this machine sees details
    local = ready(make_client())
    assert local["details"][0]["rss_bytes"] == 123_456_789
    # an open server (CUTOUT_AUTH=off on a public address): only local callers do
    open_server = make_client(host="0.0.0.0", auth="off")
    assert "details" not in ready(open_server, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert "details" in ready(open_server, environ_base={"REMOTE_ADDR": "127.0.0.1"})


def test_dns_rebinding_is_refused_by_the_real_server(
    service_env: dict[str, str], tmp_path: Any, db_url: str
) -> None:
    env = dict(service_env, CUTOUT_REDIS_URL=db_url)
    with running_api(env, tmp_path / "api.log", timeout=180) as api:
        status, _, body = http(
            "GET", api.url + "/v1/webhooks/secret", None, {"Host": "evil.example"}
        )
        assert status == 403
        assert json.loads(body)["code"] == "host_not_allowed"
        status, _, body = http("GET", api.url + "/v1/webhooks/secret")
        assert status == 403
        assert json.loads(body)["code"] == "api_key_required"
        status, _, _ = http("GET", api.url + "/")
        assert status == 200
