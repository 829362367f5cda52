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
  ``017700000001``, ``127.1``) are parsed here, never sent to DNS;
- redirects are followed by hand, each target validated from scratch;
- the body is capped while it is read, and a ``Content-Length`` over the cap is refused
  before reading; no proxy from the environment is ever used.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit

from shared.errors import PayloadTooLarge, UrlFetchFailed, UrlNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "Cutout/0.1 (+https://cutout.dev/bot)"
_CHUNK = 64 * 1024
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

# getaddrinfo, through a module attribute so tests can stand in a resolver without DNS
_getaddrinfo = socket.getaddrinfo

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Networks refused whatever the Python version's is_private/is_global tables say.
_EXTRA_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "unspecified"),
    (ipaddress.IPv4Network("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (ipaddress.IPv4Network("192.0.2.0/24"), "reserved"),  # TEST-NET-1
    (ipaddress.IPv4Network("198.18.0.0/15"), "reserved"),  # benchmarking
    (ipaddress.IPv4Network("198.51.100.0/24"), "reserved"),  # TEST-NET-2
    (ipaddress.IPv4Network("203.0.113.0/24"), "reserved"),  # TEST-NET-3
    (ipaddress.IPv4Network("255.255.255.255/32"), "broadcast"),
)
_EXTRA_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("2002::/16"), "a 6to4 tunnel"),
    (ipaddress.IPv6Network("2001::/32"), "a Teredo tunnel"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "local-use NAT64"),
    (ipaddress.IPv6Network("100::/64"), "discard-only"),
    (ipaddress.IPv6Network("2001:db8::/32"), "documentation"),
    (ipaddress.IPv6Network("fec0::/10"), "site-local"),
)

# A host name: IDNA-encoded labels of letters, digits, hyphens and underscores.
_HOSTNAME_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})?(\.[a-z0-9_]([a-z0-9_-]{0,62})?)*\.?$")
_NUMERIC_PART_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


@dataclass(frozen=True)
class FetchResult:
    """A completed HTTP exchange. ``headers`` has lower-case names (repeats joined)."""

    status: int
    headers: dict[str, str]
    body: bytes
    final_url: str
    #: the address the last request was actually sent to
    address: str = field(default="", compare=False)


# -- address classification ---------------------------------------------------------------


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be contacted (``"loopback"``, ...), or None if public.

    IPv4-mapped, IPv4-compatible and NAT64 IPv6 addresses are judged by the IPv4 address
    they carry; 6to4 and Teredo tunnel addresses are always refused.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_unspecified:
            return "unspecified"
        if address.is_loopback:
            return "loopback"
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return blocked_reason(embedded)
        for net6, reason in _EXTRA_V6:
            if address in net6:
                return reason
    else:
        for net4, reason in _EXTRA_V4:
            if address in net4:
                return reason
        if address in _CGNAT:
            return "carrier-grade NAT"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried by an IPv4-mapped, IPv4-compatible or NAT64 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    packed = int(address)
    if packed >> 32 == 0:  # ::a.b.c.d, deprecated IPv4-compatible (:: and ::1 handled before)
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if address in _NAT64:
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, allowed_networks: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` is refused given ``allowed_networks``, or None if it may be used.

    An allowed network opens an address whatever its kind; an IPv4-mapped IPv6 address
    is also opened by an IPv4 network containing its IPv4 address.
    """
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    for net in allowed_networks:
        if any(candidate in net for candidate in candidates):
            return None
    return blocked_reason(address)


def is_allowed(address: IPAddress | str, allowed_networks: Iterable[IPNetwork] = ()) -> bool:
    """True if ``address`` may be contacted."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address)
    return refusal(address, allowed_networks) is None


def parse_numeric_host(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address written in any form ``inet_aton`` accepts, else None.

    ``2130706433``, ``0x7f000001``, ``017700000001``, ``127.1`` and ``127.0.0.1`` all
    give 127.0.0.1. Raises :class:`UrlNotAllowed` for a host that looks numeric but is no
    valid address (``256.1.1.1``, ``1.2.3.4.5``): such names are never sent to DNS.
    """
    name = host.lower().removesuffix(".")
    parts = name.split(".")
    # WHATWG URL's "ends in a number": a host whose last label is numeric is an IPv4 literal
    if not parts or not _NUMERIC_PART_RE.match(parts[-1]):
        return None
    if len(parts) > 4 or not all(_NUMERIC_PART_RE.match(p) for p in parts):
        raise UrlNotAllowed(f"{host!r} is not a valid host name or IPv4 address")
    values = []
    for part in parts:
        if part.startswith("0x"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not all(c in "01234567" for c in part):
                raise UrlNotAllowed(f"{host!r} is not a valid host name or IPv4 address")
            values.append(int(part, 8))
        else:
            values.append(int(part))
    # a.b.c.d; a.b.(16 bits); a.(24 bits); (32 bits)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise UrlNotAllowed(f"{host!r} is not a valid IPv4 address")
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


# -- URL validation and resolution ----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A validated URL, split into what a request needs."""

    url: str
    scheme: Literal["http", "https"]
    host: str  # IDNA-encoded name or the address literal, without brackets
    port: int
    path: str  # path and query, percent-encoded
    literal: IPAddress | None  # the address when the host is an IP literal


def parse_url(url: str) -> Target:
    """Validate ``url`` syntactically. Raises :class:`UrlNotAllowed` saying why not."""
    if not isinstance(url, str) or not url:
        raise UrlNotAllowed("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise UrlNotAllowed("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlNotAllowed("the URL is malformed or has an invalid port") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlNotAllowed("only http and https URLs are allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise UrlNotAllowed("URLs with a user name or password are not allowed")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise UrlNotAllowed("the URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    elif not 0 < port < 65536:
        raise UrlNotAllowed("the URL has an invalid port")

    literal: IPAddress | None = None
    if parts.netloc.rsplit("@", 1)[-1].startswith("["):
        if "%" in raw_host:
            raise UrlNotAllowed("IPv6 zone identifiers are not allowed")
        try:
            literal = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise UrlNotAllowed("the URL has an invalid IPv6 address") from None
        host = str(literal)
    else:
        try:
            host = raw_host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UrlNotAllowed("the URL has an invalid host name") from None
        if not _HOSTNAME_RE.match(host) or len(host) > 253:
            raise UrlNotAllowed("the URL has an invalid host name")
        literal = parse_numeric_host(host)
        if literal is not None:
            host = str(literal)

    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    # keep existing escapes and reserved characters; escape the rest (non-ASCII)
    path = quote(path, safe="!#$%&'()*+,/:;=?@[]~")
    return Target(url=url, scheme=scheme, host=host, port=port, path=path, literal=literal)  # type: ignore[arg-type]


def resolve(target: Target, allowed_networks: Iterable[IPNetwork] = ()) -> list[IPAddress]:
    """The addresses of ``target``'s host, each checked. Looks the name up exactly once.

    Raises :class:`UrlNotAllowed` if ANY address is refused (a name with one public and
    one private address is refused), :class:`UrlFetchFailed` if the name does not resolve.
    """
    allowed = tuple(allowed_networks)
    if target.literal is not None:
        addresses: list[IPAddress] = [target.literal]
    else:
        try:
            infos = _getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError, OSError) as exc:
            failure = UrlFetchFailed(f"could not resolve the host {target.host}")
            # a temporary DNS failure is worth a retry; "no such name" is not
            failure.transient = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
            raise failure from None
        addresses = []
        for family, _type, _proto, _name, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UrlFetchFailed(f"could not resolve the host {target.host}")
    for address in addresses:
        reason = refusal(address, allowed)
        if reason is not None:
            where = "is" if target.literal is not None else "resolves to"
            raise UrlNotAllowed(f"the host {target.host} {where} a {reason} address")
    return addresses


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
    allowed = tuple(allowed_networks)
    method = method.upper()
    send_headers = dict(headers or {})
    deadline = _Deadline(total_timeout)
    follows = method in ("GET", "HEAD")
    current = url
    redirects = 0
    while True:
        target = parse_url(current)
        result = _request_once(
            target,
            max_bytes=max_bytes,
            allowed=allowed,
            timeout=timeout,
            method=method,
            body=body,
            headers=send_headers,
            deadline=deadline,
            tls_context=tls_context,
            truncate=truncate_body,
        )
        if follows and result.status in REDIRECT_STATUSES:
            location = result.headers.get("location", "").strip()
            if not location:
                raise UrlFetchFailed(f"the server answered {result.status} without a Location")
            redirects += 1
            if redirects > max_redirects:
                raise UrlFetchFailed(f"more than {max_redirects} redirects")
            following = urljoin(current, location)
            if urlsplit(following).netloc.lower() != urlsplit(current).netloc.lower():
                # credentials meant for one host are not handed to the next
                send_headers = {
                    k: v for k, v in send_headers.items() if k.lower() not in _CREDENTIAL_HEADERS
                }
            current = following
            continue
        if follows and result.status >= 300:
            failure = UrlFetchFailed(f"the server answered {result.status}")
            failure.transient = result.status >= 500 or result.status in (408, 429)
            raise failure
        return result


def _request_once(
    target: Target,
    *,
    max_bytes: int,
    allowed: tuple[IPNetwork, ...],
    timeout: tuple[float, float],
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    deadline: _Deadline,
    tls_context: ssl.SSLContext | None,
    truncate: bool,
) -> FetchResult:
    connect_timeout, read_timeout = timeout
    addresses = resolve(target, allowed)
    send_headers = {
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    send_headers.update(headers)
    refused_or_failed: OSError | None = None
    for address in addresses:
        conn = _connection(target, address, connect_timeout, allowed, tls_context, deadline)
        try:
            try:
                conn.connect()
            except (ConnectionError, OSError) as exc:
                if isinstance(exc, ssl.SSLError | TimeoutError):
                    raise
                # refused or unreachable on this address: try the host's next address
                refused_or_failed = exc
                conn.close()
                continue
            if conn.sock is not None:
                conn.sock.settimeout(deadline.cap(read_timeout))
            conn.request(method, target.path, body=body, headers=send_headers)
            response = conn.getresponse()
            status = response.status
            response_headers = _headers(response.msg)
            data = b""
            if method != "HEAD":
                data = _read_capped(response, conn, max_bytes, read_timeout, deadline, truncate)
            return FetchResult(status, response_headers, data, target.url, str(address))
        except (UrlNotAllowed, UrlFetchFailed, PayloadTooLarge):
            raise
        except ssl.SSLCertVerificationError as exc:
            raise UrlFetchFailed(
                f"the TLS certificate of {target.host} was not accepted ({exc.verify_message})"
            ) from None
        except ssl.SSLError:
            raise UrlFetchFailed(f"the TLS handshake with {target.host} failed") from None
        except TimeoutError:
            failure = UrlFetchFailed(f"{target.host} did not answer in time")
            failure.transient = True
            raise failure from None
        except (http.client.HTTPException, OSError, ValueError) as exc:
            failure = UrlFetchFailed(f"the connection to {target.host} failed ({_why(exc)})")
            failure.transient = True
            raise failure from None
        finally:
            conn.close()
    failure = UrlFetchFailed(f"could not connect to {target.host} ({_why(refused_or_failed)})")
    failure.transient = True
    raise failure


def _connection(
    target: Target,
    address: IPAddress,
    connect_timeout: float,
    allowed: tuple[IPNetwork, ...],
    tls_context: ssl.SSLContext | None,
    deadline: _Deadline,
) -> http.client.HTTPConnection:
    try:
        timeout = deadline.cap(connect_timeout)
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
            allowed=allowed,
            context=tls_context or _default_tls_context(),
        )
    return _PinnedHTTPConnection(
        target.host, target.port, address=address, timeout=timeout, allowed=allowed
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
