"""The SSRF guard's address and URL rules. Pure: nothing here opens a socket or asks DNS.

Public addresses are tested through the classification functions only; fetches in this
file are all refused before any connection (the resolver is replaced where a name is
involved, and the test fails if anything tries to connect).
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from shared.errors import UrlFetchFailed, UrlNotAllowed
from shared.net import address as netaddress
from shared.net import guard as netguard

LOOPBACK_8 = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any DNS lookup or connection attempt in this file is a bug in the guard."""

    def refuse_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"DNS lookup attempted: {args!r}")

    def refuse_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"connection attempted: {args!r}")

    monkeypatch.setattr(netaddress, "_getaddrinfo", refuse_dns)
    monkeypatch.setattr(netguard, "_open_socket", refuse_connect)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", None),  # reserved: the reason's wording varies, refusal does not
        ("255.255.255.255", "broadcast"),
        ("192.0.2.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::127.0.0.1", "loopback"),  # deprecated IPv4-compatible form
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::1", "a 6to4 tunnel"),  # 6to4 of 127.0.0.1
        ("2002:808:808::1", "a 6to4 tunnel"),  # 6to4 of a public address: still refused
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo tunnel"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_refused_addresses(address: str, reason: str | None) -> None:
    got = netaddress.blocked_reason(ipaddress.ip_address(address))
    assert got is not None, address
    if reason is not None:
        assert got == reason
    assert not netaddress.is_allowed(address)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1", "2a00:1450:4001::200e"],
)
def test_public_addresses_allowed(address: str) -> None:
    assert netaddress.blocked_reason(ipaddress.ip_address(address)) is None
    assert netaddress.is_allowed(address)


def test_mapped_and_nat64_public_addresses_judged_by_their_ipv4() -> None:
    assert netaddress.is_allowed("::ffff:8.8.8.8")
    assert netaddress.is_allowed("64:ff9b::808:808")


def test_allowed_networks_open_chosen_ranges_only() -> None:
    assert netaddress.is_allowed("127.0.0.1", LOOPBACK_8)
    assert netaddress.is_allowed("127.9.9.9", LOOPBACK_8)
    # an IPv4 network also opens the same address written IPv4-mapped
    assert netaddress.is_allowed("::ffff:127.0.0.1", LOOPBACK_8)
    assert not netaddress.is_allowed("::1", LOOPBACK_8)
    assert not netaddress.is_allowed("10.0.0.1", LOOPBACK_8)
    assert not netaddress.is_allowed("169.254.169.254", LOOPBACK_8)
    only_one = (ipaddress.ip_network("127.0.0.1/32"),)
    assert netaddress.is_allowed("127.0.0.1", only_one)
    assert not netaddress.is_allowed("127.0.0.2", only_one)
    assert netaddress.is_allowed("::1", (ipaddress.ip_network("::1/128"),))


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "0x7f000001",
        "0X7F000001",
        "017700000001",
        "127.1",
        "127.0.1",
        "0x7f.1",
        "0177.0.0.1",
        "127.0.0.1",
        "127.0.0.1.",
    ],
)
def test_numeric_forms_of_loopback(host: str) -> None:
    assert netaddress.parse_numeric_host(host) == ipaddress.IPv4Address("127.0.0.1")
    target = netaddress.parse_url(f"http://{host}/x")
    assert target.literal == ipaddress.IPv4Address("127.0.0.1")
    assert target.host == "127.0.0.1"  # the Host header and check use the real address
    with pytest.raises(UrlNotAllowed, match="loopback"):
        netguard.fetch(f"http://{host}/x", max_bytes=100)


def test_numeric_forms_agree_with_inet_aton() -> None:
    for host in ["2130706433", "0x7f000001", "017700000001", "127.1", "10.1", "0xa.0x1.2"]:
        expected = ipaddress.IPv4Address(socket.inet_aton(host))
        assert netaddress.parse_numeric_host(host) == expected


@pytest.mark.parametrize(
    "host", ["256.0.0.1", "1.2.3.4.5", "08.0.0.1", "1.2.3.0x100", "4294967296"]
)
def test_invalid_numeric_hosts_refused_without_dns(host: str) -> None:
    with pytest.raises(UrlNotAllowed):
        netaddress.parse_url(f"http://{host}/")


def test_names_are_not_numeric() -> None:
    assert netaddress.parse_numeric_host("example.com") is None
    assert netaddress.parse_numeric_host("1.example") is None
    assert netaddress.parse_numeric_host("0xdead.beef.com") is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/a.png", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com:70/_x", "only http and https"),
        ("data:image/png;base64,AAAA", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("//example.com/a.png", "only http and https"),
        ("http:///a.png", "no host"),
        ("http://", "no host"),
        ("http://user:pass@example.com/", "user name or password"),
        ("http://user@example.com/", "user name or password"),
        ("http://example.com@127.0.0.1/", "user name or password"),
        ("http://example.com/" + "a" * 2100, "longer than 2048"),
        ("http://exa mple.com/", "spaces or control"),
        ("http://example.com/\r\nX-Injected: 1", "spaces or control"),
        ("http://example.com:99999/", "port"),
        ("http://example.com:abc/", "port"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://[not-an-address]/", "malformed"),
        ("http://exa_mple..com/", "host name"),
        ("", "empty"),
    ],
)
def test_url_validation(url: str, why: str) -> None:
    with pytest.raises(UrlNotAllowed, match=why):
        netaddress.parse_url(url)
    with pytest.raises(UrlNotAllowed):
        netguard.fetch(url, max_bytes=100)


def test_url_parts() -> None:
    target = netaddress.parse_url("HTTPS://Bücher.Example:8443/ä b?q=ü#frag".replace(" ", "%20"))
    assert target.scheme == "https"
    assert target.host == "xn--bcher-kva.example"
    assert target.port == 8443
    assert target.path == "/%C3%A4%20b?q=%C3%BC"
    assert netaddress.parse_url("http://example.com").path == "/"
    assert netaddress.parse_url("http://example.com").port == 80
    assert netaddress.parse_url("https://example.com").port == 443
    assert netaddress.parse_url("http://[::1]:81/").host == "::1"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://0.0.0.0:8080/",
        "http://[2002:7f00:1::1]/",
        "http://2130706433/",
        "https://0x7f000001/",
    ],
)
def test_literal_addresses_refused_before_connecting(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match="is a"):
        netguard.fetch(url, max_bytes=100)


def _resolver(*answers: str):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def fake_getaddrinfo(host: str, port: int, **_: object) -> list[tuple]:  # type: ignore[type-arg]
        calls.append(host)
        out = []
        for answer in answers:
            address = ipaddress.ip_address(answer)
            if address.version == 4:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port)))
            else:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (answer, port, 0, 0)))
        return out

    return fake_getaddrinfo, calls


@pytest.mark.parametrize(
    "answers",
    [
        ("127.0.0.1",),
        ("10.0.0.5",),
        ("169.254.169.254",),
        ("::1",),
        ("::ffff:127.0.0.1",),
        # one public and one private answer: refused, whichever would be tried first
        ("93.184.216.34", "127.0.0.1"),
        ("2606:4700::1", "fd00::1"),
    ],
)
def test_names_resolving_to_refused_addresses(
    monkeypatch: pytest.MonkeyPatch, answers: tuple[str, ...]
) -> None:
    fake, calls = _resolver(*answers)
    monkeypatch.setattr(netaddress, "_getaddrinfo", fake)
    with pytest.raises(UrlNotAllowed, match=r"the host images\.example resolves to a") as info:
        netguard.fetch("http://images.example/a.png", max_bytes=100)
    assert calls == ["images.example"]
    # the public message names the host and the kind, not the internal address (the
    # loopback hint's ::1/128 is the only IPv6 loopback: "loopback" says as much)
    message = info.value.message.replace("CUTOUT_ALLOWED_PRIVATE_NETWORKS=::1/128", "")
    for answer in answers:
        assert answer not in message


@pytest.mark.parametrize(
    ("url", "network"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.0/8"),
        ("http://[::1]:8000/hook", "::1/128"),
        ("http://[::ffff:127.0.0.1]/hook", "127.0.0.0/8"),
        ("http://2130706433/hook", "127.0.0.0/8"),
    ],
)
def test_a_loopback_refusal_says_how_to_allow_it_for_local_testing(url: str, network: str) -> None:
    # "the host 127.0.0.1 is a loopback address" gave no hint of the setting
    with pytest.raises(UrlNotAllowed) as info:
        netguard.fetch(url, max_bytes=100)
    hint = f"; to allow it for local testing set CUTOUT_ALLOWED_PRIVATE_NETWORKS={network}"
    assert info.value.message.endswith(hint)
    # and the setting it names opens exactly that address
    target = netaddress.parse_url(url)
    assert target.literal is not None
    opened = (ipaddress.ip_network(network),)
    assert netaddress.refusal(target.literal, opened) is None


def test_a_name_on_loopback_gets_the_hint_and_private_answers_stay_unnamed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, _ = _resolver("127.0.0.1")
    monkeypatch.setattr(netaddress, "_getaddrinfo", fake)
    with pytest.raises(UrlNotAllowed) as info:
        netguard.fetch("http://localhost:8000/hook", max_bytes=100)
    assert info.value.message == (
        "the host localhost resolves to a loopback address; to allow it for local testing "
        "set CUTOUT_ALLOWED_PRIVATE_NETWORKS=127.0.0.0/8"
    )
    fake, _ = _resolver("10.20.30.40")
    monkeypatch.setattr(netaddress, "_getaddrinfo", fake)
    with pytest.raises(UrlNotAllowed) as info:
        netguard.fetch("http://hooks.internal/hook", max_bytes=100)
    assert "list it in CUTOUT_ALLOWED_PRIVATE_NETWORKS" in info.value.message
    assert "10.20" not in info.value.message


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/", "http://224.0.0.1/"]
)
def test_no_hint_for_addresses_nobody_should_open(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as info:
        netguard.fetch(url, max_bytes=100)
    assert "CUTOUT_ALLOWED_PRIVATE_NETWORKS" not in info.value.message


def test_dns_failure_is_a_fetch_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(netaddress, "_getaddrinfo", fail)
    with pytest.raises(
        UrlFetchFailed, match=r"could not resolve the host nowhere\.invalid"
    ) as info:
        netguard.fetch("http://nowhere.invalid/", max_bytes=100)
    assert info.value.code == "url_fetch_failed"
    assert not info.value.transient


def test_error_codes() -> None:
    with pytest.raises(UrlNotAllowed) as info:
        netguard.fetch("http://127.0.0.1/", max_bytes=1)
    assert info.value.code == "url_not_allowed"
    assert info.value.to_problem()["status"] == 422
