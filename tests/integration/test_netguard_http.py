"""The SSRF guard and webhook delivery against real local HTTP servers.

Every server here listens on 127.0.0.1 (or ::1) on a random port, and every request the
tests send goes only there: refusals are asserted to happen BEFORE any connection (the
refused addresses have no server, and the servers count what reaches them). Names that
must resolve are answered by a stand-in resolver, never by DNS.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.errors import PayloadTooLarge, UrlFetchFailed, UrlNotAllowed
from shared.net import address as netaddress
from shared.net import guard as netguard
from shared.net import webhooks
from shared.stores import webhooksecrets

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
ONLY_127_0_0_1 = (ipaddress.ip_network("127.0.0.1/32"),)
BIG = 200_000


@dataclass
class Seen:
    """What reached the server."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    hook_status: int = 200
    secret: str = ""

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: Seen

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _record(self, body: bytes = b"") -> None:
        self.seen.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._record()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        if path == "/ok":
            self._send(200, b"hello image", {"Content-Type": "image/png"})
        elif path == "/stream":
            # close-delimited: no Content-Length, no chunking
            size = int(query["n"][0])
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for start in range(0, size, 10_000):
                self.wfile.write(b"x" * min(10_000, size - start))
        elif path == "/chunked":
            size = int(query["n"][0])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, size, 10_000):
                piece = b"y" * min(10_000, size - start)
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/declared-big":
            # claims 1 GB; a guard that reads anything would wait for it
            self.send_response(200)
            self.send_header("Content-Length", str(1_000_000_000))
            self.end_headers()
            self.wfile.write(b"z" * 1000)
            self.wfile.flush()
            time.sleep(6)
            self.close_connection = True
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left == 0:
                self._send(200, b"end of chain")
            else:
                self._send(302, headers={"Location": f"/chain/{left - 1}"})
        elif path == "/to":
            self._send(int(query.get("code", ["302"])[0]), headers={"Location": query["url"][0]})
        elif path == "/missing":
            self._send(404, b"not here")
        elif path == "/broken":
            self._send(503, b"try later")
        elif path == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        else:
            self._send(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self._record(body)
        if self.path.startswith("/to?"):
            self._send(307, headers={"Location": parse_qs(urlsplit(self.path).query)["url"][0]})
            return
        try:
            payload = Webhook(self.seen.secret).verify(body, dict(self.headers.items()))
        except WebhookVerificationError:
            self._send(400, b"bad signature")
            return
        self.seen.requests[-1]["verified"] = payload
        self._send(self.seen.hook_status, b"thanks")


def _serve(
    host: str = "127.0.0.1", wrap: Callable[[socket.socket], socket.socket] | None = None
) -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    handler = type("BoundHandler", (Handler,), {"seen": seen})
    server_class = ThreadingHTTPServer
    if ":" in host:
        server_class = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class((host, 0), handler)
    server.daemon_threads = True
    if wrap is not None:
        server.socket = wrap(server.socket)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"), seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    """An HTTP server on 127.0.0.1: (``host:port``, what it saw)."""
    yield from _serve()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _stand_in_resolver(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Answer lookups of ``names`` from the table; any other lookup fails the test."""
    calls: list[str] = []

    def getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        if host not in names:
            raise AssertionError(f"unexpected DNS lookup of {host}")
        out: list[tuple[Any, ...]] = []
        for answer in names[host]:
            if ":" in answer:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (answer, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port)))
        return out

    monkeypatch.setattr(netaddress, "_getaddrinfo", getaddrinfo)
    return calls


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- GET ----------------------------------------------------------------------------------


def test_get_returns_the_bytes_when_loopback_is_allowed(server: tuple[str, Seen]) -> None:
    where, seen = server
    result = netguard.fetch(f"http://{where}/ok", max_bytes=1000, allowed_networks=LOOPBACK)
    assert result.status == 200
    assert result.body == b"hello image"
    assert result.headers["content-type"] == "image/png"
    assert result.final_url == f"http://{where}/ok"
    assert result.address == "127.0.0.1"
    assert seen.paths() == ["/ok"]
    assert seen.requests[0]["headers"]["user-agent"].startswith("Cutout/")


def test_loopback_refused_by_default_without_connecting(server: tuple[str, Seen]) -> None:
    where, seen = server
    port = where.rsplit(":", 1)[1]
    for url in [
        f"http://{where}/ok",
        f"http://2130706433:{port}/ok",
        f"http://0x7f000001:{port}/ok",
        f"http://017700000001:{port}/ok",
        f"http://127.1:{port}/ok",
        f"http://[::ffff:127.0.0.1]:{port}/ok",
        f"http://[::1]:{port}/ok",
    ]:
        with pytest.raises(UrlNotAllowed, match="loopback"):
            netguard.fetch(url, max_bytes=1000)
    assert seen.requests == []


def test_numeric_forms_reach_the_server_when_allowed(server: tuple[str, Seen]) -> None:
    where, seen = server
    port = where.rsplit(":", 1)[1]
    for host in ["2130706433", "0x7f000001", "017700000001", "127.1", "[::ffff:127.0.0.1]"]:
        result = netguard.fetch(
            f"http://{host}:{port}/ok", max_bytes=1000, allowed_networks=LOOPBACK
        )
        assert result.body == b"hello image"
    assert len(seen.requests) == 5


def test_name_is_resolved_once_and_the_checked_address_is_used(
    server: tuple[str, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, _ = server
    port = where.rsplit(":", 1)[1]
    calls = _stand_in_resolver(monkeypatch, {"images.test": ["127.0.0.1"]})
    result = netguard.fetch(
        f"http://images.test:{port}/host", max_bytes=1000, allowed_networks=LOOPBACK
    )
    assert calls == ["images.test"]  # one lookup: nothing left to rebind
    assert result.body == f"images.test:{port}".encode()  # Host names the host, not the IP
    assert result.address == "127.0.0.1"


def test_falls_back_to_the_next_checked_address(
    server: tuple[str, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, _ = server
    port = where.rsplit(":", 1)[1]
    # nothing listens on ::1 at this port: refused there, then 127.0.0.1 answers
    _stand_in_resolver(monkeypatch, {"images.test": ["::1", "127.0.0.1"]})
    allowed = (*LOOPBACK, ipaddress.ip_network("::1/128"))
    result = netguard.fetch(
        f"http://images.test:{port}/ok", max_bytes=100, allowed_networks=allowed
    )
    assert result.body == b"hello image"
    # but one refused answer among them refuses the name
    with pytest.raises(UrlNotAllowed):
        netguard.fetch(f"http://images.test:{port}/ok", max_bytes=100, allowed_networks=LOOPBACK)


@pytest.mark.parametrize("kind", ["stream", "chunked"])
def test_byte_cap_enforced_while_streaming(server: tuple[str, Seen], kind: str) -> None:
    where, _ = server
    url = f"http://{where}/{kind}?n={BIG}"
    with pytest.raises(PayloadTooLarge, match="larger than the limit of 50000 bytes") as info:
        netguard.fetch(url, max_bytes=50_000, allowed_networks=LOOPBACK)
    assert info.value.code == "payload_too_large"
    # exactly at the cap is fine
    result = netguard.fetch(url, max_bytes=BIG, allowed_networks=LOOPBACK)
    assert len(result.body) == BIG


def test_declared_length_over_the_cap_refused_before_reading(server: tuple[str, Seen]) -> None:
    where, _ = server
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge, match="1000000000 bytes"):
        netguard.fetch(f"http://{where}/declared-big", max_bytes=10_000, allowed_networks=LOOPBACK)
    # the server holds the connection open for 6 s: reading would have waited for it (the
    # margin is for a loaded machine)
    assert time.monotonic() - started < 5


def test_redirects_followed_up_to_five(server: tuple[str, Seen]) -> None:
    where, seen = server
    result = netguard.fetch(f"http://{where}/chain/5", max_bytes=1000, allowed_networks=LOOPBACK)
    assert result.body == b"end of chain"
    assert result.final_url == f"http://{where}/chain/0"
    assert len(seen.requests) == 6


def test_redirect_chain_of_six_fails(server: tuple[str, Seen]) -> None:
    where, seen = server
    with pytest.raises(UrlFetchFailed, match="more than 5 redirects"):
        netguard.fetch(f"http://{where}/chain/6", max_bytes=1000, allowed_networks=LOOPBACK)
    assert len(seen.requests) == 6  # the 7th hop was never requested


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/ok",
        "http://[::1]:{port}/ok",
        "http://[::ffff:127.0.0.2]:{port}/ok",
        "http://2130706434:{port}/ok",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
    ],
)
def test_redirect_to_a_refused_address(server: tuple[str, Seen], target: str) -> None:
    where, seen = server
    port = where.rsplit(":", 1)[1]
    location = target.format(port=port)
    with pytest.raises(UrlNotAllowed, match="is a"):
        netguard.fetch(
            f"http://{where}/to?url={location}", max_bytes=1000, allowed_networks=ONLY_127_0_0_1
        )
    assert seen.paths() == [f"/to?url={location}"]


def test_redirect_to_a_refused_name(
    server: tuple[str, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, _ = server
    _stand_in_resolver(monkeypatch, {"internal.test": ["10.0.0.7"]})
    with pytest.raises(UrlNotAllowed, match=r"internal\.test resolves to a private"):
        netguard.fetch(
            f"http://{where}/to?url=http://internal.test/&code=307",
            max_bytes=1000,
            allowed_networks=LOOPBACK,
        )


def test_credentials_not_carried_to_another_host(
    server: tuple[str, Seen], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, seen = server
    port = where.rsplit(":", 1)[1]
    _stand_in_resolver(monkeypatch, {"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    netguard.fetch(
        f"http://a.test:{port}/to?url=/to%3Furl%3Dhttp://b.test:{port}/ok",
        max_bytes=1000,
        allowed_networks=LOOPBACK,
        headers={"Authorization": "Bearer s3cret", "X-Trace": "1"},
    )
    sent = [r["headers"] for r in seen.requests]
    assert [h["host"] for h in sent] == [f"a.test:{port}", f"a.test:{port}", f"b.test:{port}"]
    assert [h.get("authorization") for h in sent] == ["Bearer s3cret", "Bearer s3cret", None]
    assert all(h["x-trace"] == "1" for h in sent)


def test_redirect_to_another_scheme_refused(server: tuple[str, Seen]) -> None:
    where, _ = server
    with pytest.raises(UrlNotAllowed, match="only http and https"):
        netguard.fetch(
            f"http://{where}/to?url=file:///etc/passwd", max_bytes=1000, allowed_networks=LOOPBACK
        )


def test_server_that_never_answers_times_out(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(UrlFetchFailed, match="did not answer in time") as info:
        netguard.fetch(
            f"http://127.0.0.1:{silent_port}/",
            max_bytes=1000,
            allowed_networks=LOOPBACK,
            timeout=(0.5, 0.5),
        )
    assert time.monotonic() - started < 3
    assert info.value.transient


def test_total_timeout_bounds_the_whole_exchange(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(UrlFetchFailed, match="did not answer in time"):
        netguard.fetch(
            f"http://127.0.0.1:{silent_port}/",
            max_bytes=1000,
            allowed_networks=LOOPBACK,
            timeout=(5, 20),
            total_timeout=0.5,
        )
    assert time.monotonic() - started < 3


def test_connection_refused() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UrlFetchFailed, match="connection refused"):
        netguard.fetch(f"http://127.0.0.1:{port}/", max_bytes=10, allowed_networks=LOOPBACK)


def test_error_statuses(server: tuple[str, Seen]) -> None:
    where, _ = server
    with pytest.raises(UrlFetchFailed, match="the server answered 404") as info:
        netguard.fetch(f"http://{where}/missing", max_bytes=1000, allowed_networks=LOOPBACK)
    assert not info.value.transient
    with pytest.raises(UrlFetchFailed, match="the server answered 503") as info:
        netguard.fetch(f"http://{where}/broken", max_bytes=1000, allowed_networks=LOOPBACK)
    assert info.value.transient


# -- HTTPS: the socket goes to the checked IP, TLS checks the name --------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=images.test",
         "-addext", "subjectAltName=DNS:images.test"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(tls_files: tuple[Path, Path]) -> Iterator[tuple[str, Seen]]:
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve(wrap=lambda sock: context.wrap_socket(sock, server_side=True))


def test_https_connects_to_the_ip_and_verifies_the_name(
    tls_server: tuple[str, Seen], tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    where, _ = tls_server
    port = where.rsplit(":", 1)[1]
    _stand_in_resolver(monkeypatch, {"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    result = netguard.fetch(
        f"https://images.test:{port}/ok",
        max_bytes=1000,
        allowed_networks=LOOPBACK,
        tls_context=trust,
    )
    assert result.body == b"hello image"
    # the same server under a name its certificate does not carry
    with pytest.raises(UrlFetchFailed, match=r"TLS certificate of other\.test was not accepted"):
        netguard.fetch(
            f"https://other.test:{port}/ok",
            max_bytes=1000,
            allowed_networks=LOOPBACK,
            tls_context=trust,
        )
    # and with the system's trust store, which does not know our test CA
    with pytest.raises(UrlFetchFailed, match="TLS certificate"):
        netguard.fetch(f"https://images.test:{port}/ok", max_bytes=1000, allowed_networks=LOOPBACK)


# -- webhooks -------------------------------------------------------------------------------


def test_webhook_delivered_and_verified_by_the_reference_library(
    server: tuple[str, Seen],
) -> None:
    where, seen = server
    seen.secret = webhooks.new_secret()
    body = webhooks.event_body("job.succeeded", {"id": "job_1", "status": "succeeded"})
    msg_id = webhooks.new_message_id()
    outcome = webhooks.deliver(
        f"http://{where}/hook",
        seen.secret,
        msg_id,
        body,
        timeout=5,
        allowed_networks=LOOPBACK,
    )
    assert outcome == webhooks.DeliveryOutcome(True, 200, None, retryable=False)
    (request,) = seen.requests
    assert request["method"] == "POST"
    assert request["body"] == body
    assert request["headers"]["webhook-id"] == msg_id
    assert request["headers"]["content-type"] == "application/json"
    assert request["verified"]["data"]["id"] == "job_1"


def test_webhook_answered_500_is_not_delivered(server: tuple[str, Seen]) -> None:
    where, seen = server
    seen.secret = webhooks.new_secret()
    seen.hook_status = 500
    body = webhooks.event_body("job.failed", {"id": "job_2"})
    msg_id = webhooks.new_message_id()
    outcome = webhooks.deliver(
        f"http://{where}/hook", seen.secret, msg_id, body, timeout=5, allowed_networks=LOOPBACK
    )
    assert not outcome.ok
    assert outcome.status == 500
    assert outcome.error == "the receiver answered 500"
    assert outcome.retryable
    # a retry of the same event keeps its id and verifies again
    seen.hook_status = 200
    again = webhooks.deliver(
        f"http://{where}/hook", seen.secret, msg_id, body, timeout=5, allowed_networks=LOOPBACK
    )
    assert again.ok
    assert [r["headers"]["webhook-id"] for r in seen.requests] == [msg_id, msg_id]
    assert all("verified" in r for r in seen.requests)


def test_webhook_with_the_wrong_secret_is_rejected_by_the_receiver(
    server: tuple[str, Seen],
) -> None:
    where, seen = server
    seen.secret = webhooks.new_secret()
    body = webhooks.event_body("job.failed", {"id": "job_3"})
    outcome = webhooks.deliver(
        f"http://{where}/hook",
        webhooks.new_secret(),
        webhooks.new_message_id(),
        body,
        timeout=5,
        allowed_networks=LOOPBACK,
    )
    assert outcome.status == 400
    assert not outcome.ok


def test_webhook_redirect_is_not_followed(server: tuple[str, Seen]) -> None:
    where, seen = server
    seen.secret = webhooks.new_secret()
    body = webhooks.event_body("job.failed", {"id": "job_4"})
    outcome = webhooks.deliver(
        f"http://{where}/to?url=/hook",
        seen.secret,
        webhooks.new_message_id(),
        body,
        timeout=5,
        allowed_networks=LOOPBACK,
    )
    assert outcome == webhooks.DeliveryOutcome(False, 307, "the receiver answered 307")
    assert seen.paths() == ["/to?url=/hook"]  # the signed body was not sent on


def test_webhook_to_a_refused_address_is_not_attempted(server: tuple[str, Seen]) -> None:
    where, seen = server
    outcome = webhooks.deliver(
        f"http://{where}/hook", webhooks.new_secret(), "msg_x", b"{}", timeout=5
    )
    assert outcome == webhooks.DeliveryOutcome(
        False,
        None,
        "the host 127.0.0.1 is a loopback address; to allow it for local testing set "
        "CUTOUT_ALLOWED_PRIVATE_NETWORKS=127.0.0.0/8",
        retryable=False,
    )
    assert seen.requests == []


def test_webhook_receiver_that_never_answers(silent_port: int) -> None:
    started = time.monotonic()
    outcome = webhooks.deliver(
        f"http://127.0.0.1:{silent_port}/hook",
        webhooks.new_secret(),
        "msg_y",
        b"{}",
        timeout=0.5,
        allowed_networks=LOOPBACK,
    )
    assert time.monotonic() - started < 3
    assert not outcome.ok
    assert outcome.status is None
    assert outcome.error is not None
    assert "did not answer in time" in outcome.error
    assert outcome.retryable


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_ipv6_loopback_allowed_only_when_opened() -> None:
    for where, seen in _serve("::1"):
        allowed = (ipaddress.ip_network("::1/128"),)
        result = netguard.fetch(f"http://{where}/ok", max_bytes=100, allowed_networks=allowed)
        assert result.body == b"hello image"
        with pytest.raises(UrlNotAllowed, match="loopback"):
            netguard.fetch(f"http://{where}/ok", max_bytes=100, allowed_networks=LOOPBACK)
        assert len(seen.requests) == 1


# -- secrets in a real Redis ----------------------------------------------------------------


def test_secret_store_in_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    store = webhooksecrets.WebhookSecrets(client)
    tenant = f"t{time.time_ns()}"
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.get_or_create(tenant)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1  # concurrent first calls agree
    rotated = store.rotate(tenant)
    assert rotated != results[0]
    decoded = redis.Redis.from_url(redis_url, decode_responses=True)
    assert webhooksecrets.WebhookSecrets(decoded).get(tenant) == rotated
    assert json.dumps(rotated)  # a plain str, ready for {"secret": ...}
