"""A Redis primary, one replica and three Sentinels on 127.0.0.1, as real processes.

For the failover fault test (tests/faults/test_sentinel_failover.py) and anyone who
wants to try ``sentinel://`` URLs on one machine. Sentinel mode is the same
``redis-server`` binary that ``cutout up`` runs (``redis-server <conf> --sentinel``, what
``redis-sentinel`` is), so nothing beyond the usual Redis is needed.

The replica replicates as the ACL user ``replication``: :meth:`SentinelCluster.cut_link`
switches that user off on the primary and drops its connection, which leaves the
replica behind while both still answer everyone else, as when the link between them
breaks. Writes the primary acknowledges from then on are on it alone.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from cutout.stack import Server, find_redis_server, free_port, redis_ready, redis_server

MASTER_NAME = "cutout"
REPLICATION_USER = "replication"
REPLICATION_PASSWORD = "replication-secret-0123"
# a primary that does not answer for this long is down to a Sentinel; low, so that a
# test's failover happens within seconds (production: docs/operations.md)
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def _client(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        "127.0.0.1",
        port,
        password=password,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=2,
    )


@dataclass
class SentinelCluster:
    """One primary, one replica and three Sentinels (quorum 2), each a process.

    ``password``: the primary's and the replica's (``requirepass``; the Sentinels log in
    with it, ``sentinel auth-pass``). ``sentinel_password``: the Sentinels' own
    (``requirepass`` and ``sentinel sentinel-pass``, with which they talk to each other).
    """

    root: Path
    sentinel_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    password: str | None = None
    sentinel_password: str | None = None

    def __post_init__(self) -> None:
        self.primary_port, self.replica_port = free_port(), free_port()
        self.primary = redis_server(self.root / "primary", self.primary_port)
        if self.password:
            self.primary.args += ["--requirepass", self.password]
        # redis-server takes an option's words as separate arguments
        self.primary.args += ["--user", REPLICATION_USER, "on", f">{REPLICATION_PASSWORD}"]
        self.primary.args += ["+psync", "+replconf", "+ping"]
        self.replica = redis_server(self.root / "replica", self.replica_port)
        self.replica.args += [
            "--replicaof", "127.0.0.1", str(self.primary_port),
            "--masteruser", REPLICATION_USER,
            "--masterauth", REPLICATION_PASSWORD,
        ]  # fmt: skip
        if self.password:
            self.replica.args += ["--requirepass", self.password]
        self.sentinels = [self._sentinel(i, port) for i, port in enumerate(self.sentinel_ports)]

    def _sentinel(self, index: int, port: int) -> Server:
        folder = self.root / f"sentinel-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        with conf.open("a") as text:
            if self.password:
                text.write(f"sentinel auth-pass {MASTER_NAME} {self.password}\n")
            if self.sentinel_password:
                text.write(f"requirepass {self.sentinel_password}\n")
                text.write(f"sentinel sentinel-pass {self.sentinel_password}\n")
        args = [find_redis_server(), str(conf), "--sentinel"]
        return Server(f"sentinel-{index}", args, folder / "sentinel.log")

    @property
    def url(self) -> str:
        """The ``sentinel://`` URL of database 0 (CUTOUT_REDIS_MASTER_NAME: MASTER_NAME),
        the primary's password in it (the Sentinels' own goes in
        CUTOUT_REDIS_SENTINEL_PASSWORD)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return ";".join(f"sentinel://{auth}127.0.0.1:{p}" for p in self.sentinel_ports) + "/0"

    def _data(self, port: int) -> redis.Redis:
        return _client(port, self.password)

    def _watcher(self, port: int) -> redis.Redis:
        return _client(port, self.sentinel_password)

    def start(self, timeout: float = 60) -> None:
        """Every process, then until the replica is in sync and every Sentinel knows the
        replica and the two other Sentinels."""
        for server in (self.primary, self.replica, *self.sentinels):
            server.start()
        self.primary.wait_until(redis_ready(self.primary_port, self.password), timeout)
        self.replica.wait_until(self.link_up, timeout)
        for server, port in zip(self.sentinels, self.sentinel_ports, strict=True):
            server.wait_until(functools.partial(self._sentinel_sees_all, port), timeout)

    def link_up(self) -> bool:
        try:
            info = self._data(self.replica_port).info("replication")
        except redis.RedisError:
            return False
        return info.get("master_link_status") == "up"

    def _sentinel_sees_all(self, port: int) -> bool:
        try:
            client = self._watcher(port)
            replicas: Any = client.sentinel_slaves(MASTER_NAME)
            others: Any = client.sentinel_sentinels(MASTER_NAME)
        except redis.RedisError:
            return False
        return len(replicas) == 1 and len(others) == 2

    def master_port(self) -> int | None:
        """The primary's port as the first Sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                address: Any = self._watcher(port).sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def wait_promoted(self, timeout: float = 60) -> None:
        """Until the Sentinels name the replica as primary and it takes writes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.master_port() == self.replica_port and self._is_primary(self.replica_port):
                return
            time.sleep(0.1)
        raise AssertionError(f"the replica was not promoted within {timeout:.0f} s")

    def _is_primary(self, port: int) -> bool:
        try:
            return self._data(port).info("replication").get("role") == "master"
        except redis.RedisError:
            return False

    def cut_link(self) -> int:
        """Leave the replica behind: its user is switched off on the primary and its
        connection dropped. Returns the replication offset the replica had reached."""
        primary = self._data(self.primary_port)
        primary.execute_command("ACL", "SETUSER", REPLICATION_USER, "off")
        primary.execute_command("CLIENT", "KILL", "USER", REPLICATION_USER)
        deadline = time.monotonic() + 30
        while self.link_up() and time.monotonic() < deadline:
            time.sleep(0.05)
        return int(self._data(self.replica_port).info("replication")["master_repl_offset"])

    def offset(self, port: int) -> int:
        return int(self._data(port).info("replication")["master_repl_offset"])

    def client(self, port: int | None = None) -> Any:
        """A plain client of ``port`` (default: the current primary)."""
        return self._data(port or self.master_port() or self.primary_port)

    def servers(self) -> list[Server]:
        return [self.primary, self.replica, *self.sentinels]

    def stop(self) -> None:
        for server in self.servers():
            server.kill()
