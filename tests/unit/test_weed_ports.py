"""SeaweedFS's ten ports are picked where the kernel never hands out ports by itself."""

from __future__ import annotations

import socket
from pathlib import Path

from cutout.stack import _HANDED_OUT, WeedPorts, bindable, free_port, quiet_span, reserve_port


def test_weed_ports_and_their_grpc_partners_avoid_the_ephemeral_range() -> None:
    low, high = quiet_span()
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(20):
        picked = vars(WeedPorts.pick()).values()
        everything = {p for q in picked for p in (q, q + 10000)}
        assert len(everything) == 10
        assert all(low <= q < high for q in picked)
        assert max(everything) < ephemeral


def test_free_ports_lie_below_weeds_span_and_are_never_handed_out_twice() -> None:
    """A CI run lost a stack when gunicorn's port, got from bind(0), was taken by a
    Redis replica's outgoing connection before gunicorn bound it."""
    low, _ = quiet_span()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200
    assert all(1024 < p < low for p in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_in_use_or_whose_partner_is_in_use_is_never_picked(monkeypatch) -> None:
    low, high = quiet_span()
    held, partner_held = low + 7, low + 11
    with socket.socket() as one, socket.socket() as other:
        one.bind(("127.0.0.1", held))
        other.bind(("127.0.0.1", partner_held + 10000))
        offers = iter([held, partner_held, held, *range(low + 100, high)])
        monkeypatch.setattr("cutout.stack.random.randrange", lambda a, b: next(offers))
        picked = list(vars(WeedPorts.pick()).values())
    assert held not in picked
    assert partner_held not in picked
    assert picked == sorted(picked)
    assert min(picked) >= low + 100


def test_an_explicit_s3_port_is_kept() -> None:
    assert WeedPorts.pick(s3=9333).s3 == 9333


def test_a_reserved_port_is_picked_by_neither(monkeypatch) -> None:
    """`cutout up` reserves its API's port: Redis and SeaweedFS start first, while the
    port is still free, and must not take it."""
    low, high = quiet_span()
    mine, spare = [p for p in range(2048, low) if p not in _HANDED_OUT and bindable(p)][:2]
    weeds = next(p for p in range(low, high) if bindable(p) and bindable(p + 10000))
    reserve_port(mine)
    reserve_port(weeds + 10000)  # a gRPC partner counts too
    offers = iter([mine, spare, weeds, *range(weeds + 1, high)])
    monkeypatch.setattr("cutout.stack.random.randrange", lambda a, b: next(offers))
    assert free_port() == spare
    assert weeds not in vars(WeedPorts.pick()).values()
