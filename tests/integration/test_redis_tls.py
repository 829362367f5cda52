"""TLS and credentials: Redis over TLS with an ACL user, S3 over HTTPS with a private CA.

Real servers on loopback, with certificates made at test time (testkit/tls.py): one
Debian ``redis-server`` for the module that listens only on a TLS port, asks every
client for a certificate signed by the CA (``--tls-auth-clients yes``) and has the
default user off (clients log in as the ACL user ``cutout``); one SeaweedFS whose S3 also
answers HTTPS with a certificate of the same CA. ``cutout up`` with both (so it starts
neither) runs the real API and a real worker, and a job goes through to ``succeeded``.
With records in a plain Redis and Celery's queues in the TLS one, the API's producer
sends over TLS.
A server that asks no client certificate (most managed Redis) takes the CA file alone.
A client that does not trust the server's CA is refused (the API answers 503, never 500),
and a TLS file that does not exist is named before anything starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cutout.stack import Server, WeedPorts, free_port, port_open, s3_ready, weed_server
from shared.contract.settings import load_settings
from shared.redis.errors import answers, connect
from shared.s3.keys import output_key
from shared.s3.storage import S3Storage
from shared.stores.brokerscan import job_of, queue_lists
from testkit.procs import ROOT, S3_CREDENTIALS
from testkit.tls import TlsFiles, find_tls_redis_server, make_tls_files, tls_redis_args
from tests.integration.conftest import http, multipart, running_api, wait_for
from tests.integration.test_service import poll
from tests.integration.test_up import descendants, start_up, stop
from tests.integration.test_worker import photo_bytes
from tests.procs import command_lines

USER, PASSWORD = "cutout", "p@ss:w/rd"  # characters a URL must percent-encode
URL_PASSWORD = "p%40ss%3Aw%2Frd"
# the ACL user the service logs in as, as a managed Redis has them: every key and
# channel, no dangerous command (FLUSHALL, CONFIG, KEYS, INFO, DEBUG, ...)
ACL_USER = ["--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all", "-@dangerous"]
BUCKET = "cutout-tls"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("certs"))


def tls_settings(url: str, files: TlsFiles, ca: Path | None = None) -> dict[str, str]:
    """The settings of a client of the module's Redis: its URL, the CA, the client's
    certificate and key."""
    return {
        "CUTOUT_REDIS_URL": url,
        "CUTOUT_REDIS_TLS_CA_FILE": str(ca or files.ca),
        "CUTOUT_REDIS_TLS_CERT_FILE": str(files.client_cert),
        "CUTOUT_REDIS_TLS_KEY_FILE": str(files.client_key),
    }


def start_tls_redis(files: TlsFiles, folder: Path, clients: str) -> tuple[Server, str]:
    """A TLS-only redis-server with the ACL user, client certificates ``clients`` (yes,
    optional or no); the server and its URL (user and password, no TLS files)."""
    port = free_port()
    args = [*tls_redis_args(port, files, folder, clients=clients), *ACL_USER]
    try:
        binary = find_tls_redis_server()
    except RuntimeError as exc:  # as the e2e tier does without Chromium: .ci/run installs it
        pytest.skip(str(exc))
    server = Server(f"redis-tls-{clients}", [binary, *args], folder / "redis.log").start()
    return server, f"rediss://{USER}:{URL_PASSWORD}@127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def tls_redis(tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The module's TLS-only redis-server, which asks every client for a certificate; its
    URL (user and password, no TLS files)."""
    server, url = start_tls_redis(tls_files, tmp_path_factory.mktemp("redis-tls"), "yes")
    full = load_settings(tls_settings(url, tls_files)).redis_url
    try:
        server.wait_until(lambda: answers(str(full)), 30)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def https_s3(tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SeaweedFS whose S3 answers HTTPS (the CA's server certificate); its endpoint."""
    env = dict(os.environ, **S3_CREDENTIALS)
    ports = WeedPorts.pick()
    https_port = next(p for p in iter(free_port, 0) if p not in vars(ports).values())
    server = weed_server(tmp_path_factory.mktemp("s3-tls"), ports, BUCKET, env)
    server.args += [
        f"-s3.cert.file={tls_files.server_cert}",
        f"-s3.key.file={tls_files.server_key}",
        f"-s3.port.https={https_port}",
    ]
    server.start()
    try:
        server.wait_until(s3_ready(f"http://127.0.0.1:{ports.s3}", BUCKET, env), 90)
        wait_for(lambda: port_open(https_port), 30)
        yield f"https://127.0.0.1:{https_port}"
    finally:
        server.stop()


def test_a_job_runs_through_cutout_up_on_tls_redis_as_an_acl_user_and_https_s3(
    tls_redis: str, tls_files: TlsFiles, https_s3: str, model_home: Path, tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    proc, url = start_up(
        tmp_path / "data",
        free_port(),
        model_home,
        log,
        **tls_settings(tls_redis, tls_files),
        CUTOUT_S3_ENDPOINT_URL=https_s3,
        CUTOUT_S3_BUCKET=BUCKET,
        CUTOUT_S3_CA_BUNDLE=str(tls_files.ca),
        **S3_CREDENTIALS,
    )
    children = descendants(proc)
    try:
        # `cutout up` started neither Redis nor SeaweedFS: the API and the worker use ours
        names = command_lines(proc.pid)
        assert "redis-server" not in names
        assert "weed" not in names
        body, ctype = multipart(
            {"model": "u2netp"}, {"image": ("a.jpg", photo_bytes(), "image/jpeg")}
        )
        status, _, raw = http("POST", f"{url}/v1/jobs", body, {"Content-Type": ctype})
        assert status == 202, raw
        job, _ = poll(url, json.loads(raw)["id"])
        assert job["status"] == "succeeded", job
        status, _, result = http("GET", f"{url}/v1/jobs/{job['id']}/result")
        assert status == 200
        assert result[:8] == b"\x89PNG\r\n\x1a\n"
        status, _, raw = http("GET", f"{url}/readyz")
        assert status == 200, raw
        assert json.loads(raw)["checks"] == {"redis": "ok", "storage": "ok"}
    except BaseException:
        proc.kill()
        raise
    stop(proc, children)
    # the record is in the TLS Redis, the cutout in the HTTPS S3
    settings = load_settings(tls_settings(tls_redis, tls_files))
    assert connect(str(settings.redis_url)).exists(f"cutout:job:{job['id']}")
    storage = s3(https_s3, ca_bundle=tls_files.ca)
    # without keys (loopback) every job is the tenant `public`'s
    stored = storage.get(output_key("public", job["id"], "png"))
    assert stored == result
    # the password was never written to a log
    assert PASSWORD not in log.read_text() + _logs(tmp_path / "data")


def s3(endpoint: str, **options: Any) -> S3Storage:
    """A client of the HTTPS SeaweedFS with the test's credentials."""
    return S3Storage(
        endpoint,
        BUCKET,
        access_key=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        **options,
    )


def _logs(data_dir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (data_dir / "logs").glob("*.log"))


def test_an_api_that_does_not_trust_the_servers_ca_answers_503_and_is_not_ready(
    tls_redis: str, tls_files: TlsFiles, service_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(service_env, **tls_settings(tls_redis, tls_files, ca=tls_files.other_ca))
    with running_api(env, tmp_path / "api.log") as api:
        status, _, raw = http("GET", f"{api.url}/readyz")
        assert status == 503, raw
        assert json.loads(raw)["checks"]["redis"] == "unreachable"
        body, ctype = multipart(
            {"model": "u2netp"}, {"image": ("a.jpg", photo_bytes(), "image/jpeg")}
        )
        status, _, raw = http("POST", f"{api.url}/v1/jobs", body, {"Content-Type": ctype})
        assert status == 503, raw
        problem = json.loads(raw)
        assert problem["code"] == "unavailable"
        # the API's log and the answer say why: the server's certificate is not trusted
        assert problem["detail"].endswith("(TLS: certificate verify failed)"), problem


def test_a_separate_broker_over_tls_carries_the_apis_tasks(
    tls_redis: str,
    tls_files: TlsFiles,
    service_env: dict[str, str],
    module_db: str,
    tmp_path: Path,
) -> None:
    # records in a plain Redis, Celery's queues in the TLS one (a database no other test
    # of this module consumes): the files apply to the rediss:// URL only
    broker = tls_redis.removesuffix("/0") + "/1"
    env = dict(service_env, **tls_settings(module_db, tls_files), CUTOUT_BROKER_URL=broker)
    with running_api(env, tmp_path / "api.log") as api:
        status, _, raw = http("GET", f"{api.url}/readyz")
        assert status == 200, raw
        assert json.loads(raw)["checks"]["broker"] == "ok"
        body, ctype = multipart(
            {"model": "u2netp"}, {"image": ("a.jpg", photo_bytes(), "image/jpeg")}
        )
        status, _, raw = http("POST", f"{api.url}/v1/jobs", body, {"Content-Type": ctype})
        assert status == 202, raw
        job_id = json.loads(raw)["id"]
        # the API's Celery producer sent the task over TLS: it waits in the TLS broker
        client = connect(str(load_settings(tls_settings(broker, tls_files)).redis_url))
        waiting = [m for key in queue_lists("interactive") for m in client.lrange(key, 0, -1)]
        assert [job_of(m) for m in waiting] == [job_id]
        status, _, raw = http("GET", f"{api.url}/metrics")
        assert 'cutout_queue_depth{queue="interactive"} 1.0' in raw.decode()


def test_the_server_verifies_the_client_certificate_and_the_client_the_server(
    tls_redis: str, tls_files: TlsFiles
) -> None:
    ca, cert, key = tls_files.ca, tls_files.client_cert, tls_files.client_key
    # the URL's own query, as redis-py and Celery read it, works as the settings do
    query = f"?ssl_ca_certs={ca}&ssl_certfile={cert}&ssl_keyfile={key}"
    assert answers(str(load_settings({"CUTOUT_REDIS_URL": tls_redis + query}).redis_url))
    # without its certificate the server refuses the client (--tls-auth-clients yes)
    without = {"CUTOUT_REDIS_URL": tls_redis, "CUTOUT_REDIS_TLS_CA_FILE": str(ca)}
    assert not answers(str(load_settings(without).redis_url))
    # a rediss:// URL with no CA verifies against the system's CAs, which do not know ours
    bare = dict(tls_settings(tls_redis, tls_files))
    del bare["CUTOUT_REDIS_TLS_CA_FILE"]
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(str(load_settings(bare).redis_url)).ping()
    # a wrong password is refused by the ACL
    wrong = tls_settings(tls_redis.replace(URL_PASSWORD, "nope"), tls_files)
    with pytest.raises(redis.AuthenticationError):
        connect(str(load_settings(wrong).redis_url)).ping()


def test_a_server_that_asks_no_client_certificate_takes_the_ca_file_alone(
    tls_files: TlsFiles, tmp_path: Path
) -> None:
    """The client certificate is optional: most managed Redis ask none (mutual TLS off)."""
    server, url = start_tls_redis(tls_files, tmp_path, "no")
    settings = {"CUTOUT_REDIS_URL": url, "CUTOUT_REDIS_TLS_CA_FILE": str(tls_files.ca)}
    try:
        full = str(load_settings(settings).redis_url)
        server.wait_until(lambda: answers(full), 30)
        client = connect(full)
        client.set("cutout:tls-check", "over TLS, no client certificate")
        stored = client.get("cutout:tls-check")
        assert stored in ("over TLS, no client certificate", b"over TLS, no client certificate")
        # the server is still verified: without our CA the handshake fails
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            connect(str(load_settings({"CUTOUT_REDIS_URL": url}).redis_url)).ping()
    finally:
        server.stop()


def test_s3_over_https_is_verified_with_the_ca_bundle(
    https_s3: str, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not s3(https_s3, max_attempts=1).ping()
    assert s3(https_s3, ca_bundle=tls_files.ca).ping()
    wrong = s3(https_s3, ca_bundle=tls_files.other_ca, max_attempts=1)
    assert not wrong.ping()
    # botocore's own variable, which CUTOUT_S3_CA_BUNDLE overrides
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tls_files.ca))
    assert s3(https_s3).ping()


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        ("api", "CUTOUT_REDIS_TLS_CA_FILE"),
        ("worker", "CUTOUT_REDIS_TLS_CERT_FILE"),
        ("up", "CUTOUT_S3_CA_BUNDLE"),
    ],
)
def test_a_missing_tls_file_is_named_before_anything_starts(
    command: str, variable: str, tls_files: TlsFiles, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOUT_", "AWS_"))}
    env.update(tls_settings("rediss://cutout:pw@127.0.0.1:1/0", tls_files))
    env.update(CUTOUT_DATA_DIR=str(tmp_path), CUTOUT_S3_ENDPOINT_URL="https://127.0.0.1:1")
    env[variable] = str(tmp_path / "gone.pem")
    done = subprocess.run(
        [sys.executable, "-m", "cutout", command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"{variable}: no such file, got '{tmp_path / 'gone.pem'}'" in done.stderr
    assert "Traceback" not in done.stderr
