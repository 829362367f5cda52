"""Which URLs and addresses Cutout may contact: the address policy of the SSRF guard.

:func:`parse_url` validates a URL's syntax (scheme, credentials, length, host: numeric
hosts in every form ``inet_aton`` accepts are parsed here and never sent to DNS);
:func:`resolve` looks its host up ONCE and refuses it if ANY address is private,
loopback, link-local, multicast, reserved, unspecified, carrier-grade NAT, an IPv6
address that embeds such an IPv4 address, or a 6to4/Teredo tunnel address, unless it
lies inside one of ``allowed_networks`` (``CUTOUT_ALLOWED_PRIVATE_NETWORKS``).
:mod:`shared.net.guard` does the guarded HTTP with these.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from shared.errors import UrlFetchFailed, UrlNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048

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


def allow_hint(address: IPAddress) -> str:
    """For a loopback or private address, how an operator opens it (webhooks and
    ``image_url`` on the same machine or network, for testing): text to append to the
    refusal, else ''. It never names the address itself (a name's answers stay private);
    link-local (cloud metadata) and the rest get no hint."""
    reason = blocked_reason(address)
    if reason == "loopback":
        mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
        network = "127.0.0.0/8" if address.version == 4 or mapped else "::1/128"
        return f"; to allow it for local testing set CUTOUT_ALLOWED_PRIVATE_NETWORKS={network}"
    if reason == "private":
        return (
            "; to allow a private network, list it in CUTOUT_ALLOWED_PRIVATE_NETWORKS "
            "(docs/settings.md)"
        )
    return ""


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
            raise UrlNotAllowed(
                f"the host {target.host} {where} a {reason} address{allow_hint(address)}"
            )
    return addresses
