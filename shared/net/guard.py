"""Outbound HTTP that cannot be pointed at our own network (SSRF guard).

Used for ``image_url`` fetches, the ``url`` parameter of ``/api/remove`` and webhook
delivery. The rules, after imgproxy's ``privatenet`` and generic HTTP transport:

- only ``http`` and ``https``; no user:password in the URL; at most 2048 characters;
- the host is resolved ONCE (``getaddrinfo``) and refused if ANY of its addresses is
  private, loopback, link-local, multicast, reserved, unspecified, carrier-grade NAT, or
  an IPv6 address that embeds such an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
  IPv4-compatible, NAT64), or a 6to4/Teredo tunnel address, unless it lies inside one of
  ``allowed_networks`` (``CUTOUT_ALLOWED_PRIVATE_NETWORKS``);
- the socket connects to exactly the address that was checked (no second lookup, so a
  DNS answer that changes between check and use, "DNS rebinding", gains nothing); TLS
  still verifies the certificate against the host name (SNI);
- numeric hosts in every form ``inet_aton`` accepts (``2130706433``, ``0x7f000001``,
  ``017700000001``, ``127.1``) are parsed, never sent to DNS;
- redirects are followed by hand, each target validated from scratch;
- the body is capped while it is read, and a ``Content-Length`` over the cap is refused
  before reading; no proxy from the environment is ever used.

The address policy (URL syntax, which addresses are refused, the one lookup) is
:mod:`shared.net.address`; this module does the HTTP.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from shared.errors import PayloadTooLarge, UrlFetchFailed, UrlNotAllowed
from shared.net.address import IPAddress, IPNetwork, Target, parse_url, refusal, resolve

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "Cutout/0.1 (+https://cutout.dev/bot)"
_CHUNK = 64 * 1024
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True)
class FetchResult:
    """A completed HTTP exchange. ``headers`` has lower-case names (repeats joined)."""

    status: int
    headers: dict[str, str]
    body: bytes
    final_url: str
    #: the address the last request was actually sent to
    address: str = field(default="", compare=False)


# -- connections pinned to a checked address --------------------------------------------------


def _open_socket(
    address: IPAddress, port: int, timeout: float | None, allowed: tuple[IPNetwork, ...]
) -> socket.socket:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((str(address), port))
        # belt and braces: the peer really is the address that was checked
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
        if peer != address or refusal(peer, allowed) is not None:
            raise UrlNotAllowed("the connection went to an address that is not allowed")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to ``host`` (Host header) over a socket to the pre-checked ``address``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        address: IPAddress,
        timeout: float,
        allowed: tuple[IPNetwork, ...],
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self._allowed = allowed

    def connect(self) -> None:
        self.sock = _open_socket(self._address, self.port, self.timeout, self._allowed)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the pre-checked ``address``; SNI and certificate check use ``host``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        address: IPAddress,
        timeout: float,
        allowed: tuple[IPNetwork, ...],
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._allowed = allowed
        self._tls = context

    def connect(self) -> None:
        sock = _open_socket(self._address, self.port, self.timeout, self._allowed)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _default_tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


# -- fetch ---------------------------------------------------------------------------------


class _Deadline:
    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def cap(self, timeout: float) -> float:
        """``timeout``, shortened to what is left; raises once nothing is left."""
        if self.end is None:
            return timeout
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return min(timeout, left)


@dataclass(frozen=True)
class _Exchange:
    """What every request of one :func:`fetch` shares, its redirects included."""

    max_bytes: int
    allowed: tuple[IPNetwork, ...]
    timeout: tuple[float, float]  # (connect, read)
    method: str
    body: bytes | None
    deadline: _Deadline
    tls_context: ssl.SSLContext | None
    truncate: bool


def fetch(
    url: str,
    *,
    max_bytes: int,
    allowed_networks: Iterable[IPNetwork] = (),
    timeout: tuple[float, float] = (5, 20),
    max_redirects: int = 5,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    total_timeout: float | None = 60.0,
    tls_context: ssl.SSLContext | None = None,
    truncate_body: bool = False,
) -> FetchResult:
    """Send one HTTP request through the SSRF guard and return the response.

    ``timeout`` is (connect, read) in seconds, the read timeout applying to each wait for
    data; ``total_timeout`` bounds the whole exchange, redirects included, so a server
    that trickles bytes cannot hold a worker. Redirects are followed (re-validated from
    scratch each time) for GET and HEAD only; other methods get the 3xx answer back.

    Raises:
        UrlNotAllowed: the URL or any address it resolves or redirects to is refused.
        UrlFetchFailed: DNS failure, connection refused or reset, timeout, TLS failure,
            too many redirects, or (GET/HEAD only) an answer of 400 or more. Its
            ``transient`` attribute says whether trying again later may help.
        PayloadTooLarge: the body (or its Content-Length) is over ``max_bytes``.

    For other methods (webhooks) any status is returned as a :class:`FetchResult`.
    With ``truncate_body`` a body over ``max_bytes`` is cut short instead of refused
    (for answers whose status matters and whose body does not).
    """
    exchange = _Exchange(
        max_bytes=max_bytes,
        allowed=tuple(allowed_networks),
        timeout=timeout,
        method=method.upper(),
        body=body,
        deadline=_Deadline(total_timeout),
        tls_context=tls_context,
        truncate=truncate_body,
    )
    follows = exchange.method in ("GET", "HEAD")
    send_headers = dict(headers or {})
    current = url
    redirects = 0
    while True:
        result = _request_once(parse_url(current), exchange, send_headers)
        if not follows or result.status < 300:
            return result
        following = _redirect_target(result, current)
        redirects += 1
        if redirects > max_redirects:
            raise UrlFetchFailed(f"more than {max_redirects} redirects")
        send_headers = _headers_for_hop(send_headers, current, following)
        current = following


def _redirect_target(result: FetchResult, current: str) -> str:
    """Where a GET's or HEAD's 3xx answer from ``current`` points; raises for any other
    answer of 300 or more (transient for 5xx, 408 and 429) and for one without a Location."""
    if result.status not in REDIRECT_STATUSES:
        failure = UrlFetchFailed(f"the server answered {result.status}")
        failure.transient = result.status >= 500 or result.status in (408, 429)
        raise failure
    location = result.headers.get("location", "").strip()
    if not location:
        raise UrlFetchFailed(f"the server answered {result.status} without a Location")
    return urljoin(current, location)


def _headers_for_hop(headers: dict[str, str], current: str, following: str) -> dict[str, str]:
    """The headers to send on to ``following``: credentials meant for one host are not
    handed to the next."""
    if urlsplit(following).netloc.lower() == urlsplit(current).netloc.lower():
        return headers
    return {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}


def _request_once(target: Target, exchange: _Exchange, headers: dict[str, str]) -> FetchResult:
    """One request to ``target``, tried on each of its host's addresses in turn until
    one accepts the connection."""
    send_headers = {
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    send_headers.update(headers)
    refused_or_failed: OSError | None = None
    for address in resolve(target, exchange.allowed):
        conn = _connection(target, address, exchange)
        try:
            with _as_fetch_failure(target.host):
                try:
                    conn.connect()
                except (ConnectionError, OSError) as exc:
                    if isinstance(exc, ssl.SSLError | TimeoutError):
                        raise
                    # refused or unreachable on this address: try the host's next address
                    refused_or_failed = exc
                    continue
                return _send(conn, target, str(address), exchange, send_headers)
        finally:
            conn.close()
    failure = UrlFetchFailed(f"could not connect to {target.host} ({_why(refused_or_failed)})")
    failure.transient = True
    raise failure


def _send(
    conn: http.client.HTTPConnection,
    target: Target,
    address: str,
    exchange: _Exchange,
    headers: dict[str, str],
) -> FetchResult:
    """The request on a connected ``conn``, and its answer (the body capped)."""
    read_timeout = exchange.timeout[1]
    if conn.sock is not None:
        conn.sock.settimeout(exchange.deadline.cap(read_timeout))
    conn.request(exchange.method, target.path, body=exchange.body, headers=headers)
    response = conn.getresponse()
    status, response_headers = response.status, _headers(response.msg)
    data = b""
    if exchange.method != "HEAD":
        data = _read_capped(
            response, conn, exchange.max_bytes, read_timeout, exchange.deadline, exchange.truncate
        )
    return FetchResult(status, response_headers, data, target.url, address)


@contextmanager
def _as_fetch_failure(host: str) -> Iterator[None]:
    """TLS, timeout and connection errors in the block, raised as UrlFetchFailed (our own
    refusals pass through)."""
    try:
        yield
    except (UrlNotAllowed, UrlFetchFailed, PayloadTooLarge):
        raise
    except ssl.SSLCertVerificationError as exc:
        raise UrlFetchFailed(
            f"the TLS certificate of {host} was not accepted ({exc.verify_message})"
        ) from None
    except ssl.SSLError:
        raise UrlFetchFailed(f"the TLS handshake with {host} failed") from None
    except TimeoutError:
        failure = UrlFetchFailed(f"{host} did not answer in time")
        failure.transient = True
        raise failure from None
    except (http.client.HTTPException, OSError, ValueError) as exc:
        failure = UrlFetchFailed(f"the connection to {host} failed ({_why(exc)})")
        failure.transient = True
        raise failure from None


def _connection(
    target: Target, address: IPAddress, exchange: _Exchange
) -> http.client.HTTPConnection:
    try:
        timeout = exchange.deadline.cap(exchange.timeout[0])
    except TimeoutError:
        failure = UrlFetchFailed(f"{target.host} did not answer in time")
        failure.transient = True
        raise failure from None
    if target.scheme == "https":
        return _PinnedHTTPSConnection(
            target.host,
            target.port,
            address=address,
            timeout=timeout,
            allowed=exchange.allowed,
            context=exchange.tls_context or _default_tls_context(),
        )
    return _PinnedHTTPConnection(
        target.host, target.port, address=address, timeout=timeout, allowed=exchange.allowed
    )


def _read_capped(
    response: http.client.HTTPResponse,
    conn: http.client.HTTPConnection,
    max_bytes: int,
    read_timeout: float,
    deadline: _Deadline,
    truncate: bool,
) -> bytes:
    declared = response.getheader("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        if truncate:
            return b""
        raise PayloadTooLarge(
            f"the response is {int(declared)} bytes, more than the limit of {max_bytes}"
        )
    chunks: list[bytes] = []
    received = 0
    while received <= max_bytes:
        if conn.sock is not None:
            conn.sock.settimeout(deadline.cap(read_timeout))
        chunk = response.read(min(_CHUNK, max_bytes + 1 - received))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        received += len(chunk)
    if truncate:
        return b"".join(chunks)[:max_bytes]
    raise PayloadTooLarge(f"the response is larger than the limit of {max_bytes} bytes")


def _headers(message: http.client.HTTPMessage) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in message.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _why(exc: BaseException | None) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed without an answer"
    if isinstance(exc, http.client.HTTPException):
        return "invalid HTTP answer"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__ if exc is not None else "no address"
