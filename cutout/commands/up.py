"""``cutout up``: the whole service on this machine (Redis, S3, the API, one worker).

It says what it is starting as it goes, and "ready" only once a worker takes jobs: the
API's ``/readyz`` answers 200 (Redis and storage reachable) and counts a worker whose
consumer takes messages (``workers.consuming``, from the consumer's heartbeat in Redis:
worker/health.py). A job submitted after "ready" runs at once; one submitted before
waits in its queue. The worker's numba cache (alpha matting's compiled code) lives in
the data folder unless ``NUMBA_CACHE_DIR`` is set, so it is compiled once per folder.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cutout.commands import settings_or_exit

READY_TIMEOUT = 300.0  # from the API's and the worker's start to a consuming worker
NOTE_EVERY = 15.0  # a "still starting" line this often while nothing changes


def say(message: str) -> None:
    print(message, flush=True)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _credentials(data_dir: Path) -> dict[str, str]:
    """S3 credentials for the embedded store: from AWS_* if set, else made once and kept."""
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return {
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        }
    path = data_dir / "s3-credentials"
    if not path.exists():
        path.write_text(f"cutout-{secrets.token_hex(4)}\n{secrets.token_urlsafe(24)}\n")
        path.chmod(0o600)
    key, secret = path.read_text().split()[:2]
    return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}


def _lock_data_dir(data_dir: Path) -> IO[str] | None:
    """An exclusive lock on ``data_dir/up.lock`` for this ``cutout up`` (None, with a
    message, when another holds it). Two stacks on one folder would run two Redis servers
    on one AOF file and two SeaweedFS servers on one store."""
    # held for the whole run, not closed here
    handle = open(data_dir / "up.lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        _warn(
            f"cutout up: {data_dir} is in use by another cutout up (pid {pid}); stop it, "
            "or give this one its own CUTOUT_DATA_DIR"
        )
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _environment(settings: Any, data_dir: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(_credentials(data_dir))
    env["CUTOUT_PORT"] = str(port)
    env["CUTOUT_DATA_DIR"] = str(data_dir)
    # numba's compiled code for alpha matting: kept with the data, so a second start
    # loads it (under a second) instead of compiling (~30 s); a value set by the user wins
    if not env.get("NUMBA_CACHE_DIR"):
        env["NUMBA_CACHE_DIR"] = str(data_dir / "numba")
    Path(env["NUMBA_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


@dataclass
class Stack:
    """What ``cutout up`` started, in start order, and whether a stop was asked for."""

    settings: Any
    data_dir: Path
    env: dict[str, str]
    servers: list[Any] = field(default_factory=list)
    stopping: bool = False
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"

    def dead(self) -> Any | None:
        return next((server for server in self.servers if not server.alive), None)


def _start_backing(stack: Stack) -> Callable[[], None]:
    """Redis and SeaweedFS, unless CUTOUT_REDIS_URL / CUTOUT_S3_ENDPOINT_URL name others.

    Waits for Redis; returns what waits for storage, so that the worker and the API
    start while SeaweedFS does (they need its address, not its answer, to start)."""
    from cutout.stack import WeedPorts, free_port, redis_ready, redis_server, s3_ready, weed_server

    settings, data_dir, env = stack.settings, stack.data_dir, stack.env
    redis = None
    if not settings.redis_url:
        say("starting Redis …")
        rport = free_port()
        redis = redis_server(data_dir / "redis", rport).start()
        stack.servers.append(redis)
    wait_s3: Callable[[], None] = lambda: None  # noqa: E731
    if not settings.s3_endpoint_url:
        say("starting S3 storage (SeaweedFS) …")
        ports = WeedPorts.pick()
        weed = weed_server(data_dir / "s3", ports, settings.s3_bucket, env).start()
        stack.servers.append(weed)
        endpoint = env["CUTOUT_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{ports.s3}"

        def wait_s3() -> None:
            weed.wait_until(s3_ready(endpoint, settings.s3_bucket, env), 90)
            say(f"s3       {endpoint} bucket {settings.s3_bucket} (data in {data_dir / 's3'})")

    if redis is not None:
        redis.wait_until(redis_ready(rport), 30)
        env["CUTOUT_REDIS_URL"] = f"redis://127.0.0.1:{rport}/0"
        say(f"redis    127.0.0.1:{rport} (data in {data_dir / 'redis'})")
    return wait_s3


def _readyz(url: str) -> tuple[int, dict[str, Any]]:
    """``/readyz``'s status and body; (0, {}) while the API does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def _stage(status: int, body: dict[str, Any], models: str) -> str:
    """Where the start is, as one line, from ``/readyz``."""
    if status == 0:
        return "api      starting …"
    if status != 200:
        return "api      waiting for Redis and storage …"
    workers = body.get("workers") or {}
    if workers.get("consuming"):
        return "worker   taking jobs"
    if workers.get("alive"):
        return f"worker   pool started; loading {models} …"
    return "worker   starting …"


def _wait_ready(stack: Stack, url: str) -> bool:
    """Print each stage until a worker consumes; False (with the reason) if a server
    exits, the stop is asked for, or READY_TIMEOUT passes first."""
    models = ", ".join(stack.settings.models)
    deadline = time.monotonic() + READY_TIMEOUT
    last, noted, api_ready = "", time.monotonic(), False
    while not stack.stopping:
        dead = stack.dead()
        if dead is not None:
            _warn(f"cutout up: {dead.name} stopped while starting:\n{dead.tail()}")
            return False
        status, body = _readyz(url)
        if status == 200 and not api_ready:
            say(f"api      ready ({stack.elapsed()})")
            api_ready = True
        stage = _stage(status, body, models)
        if stage != last:
            say(stage if stage.endswith("…") else f"{stage} ({stack.elapsed()})")
            last, noted = stage, time.monotonic()
        if stage == "worker   taking jobs":
            return True
        if time.monotonic() > deadline:
            _warn(f"cutout up: no worker took jobs within {READY_TIMEOUT:.0f} s")
            return False
        if time.monotonic() - noted > NOTE_EVERY:
            say(f"         … still waiting for the {stage.split()[0]} ({stack.elapsed()})")
            noted = time.monotonic()
        time.sleep(0.2)
    return False


def _start_service(stack: Stack, url: str, wait_s3: Callable[[], None]) -> bool:
    """The worker and the API, then the wait for a worker that takes jobs."""
    from cutout.stack import Server
    from worker.engine import fetch_models

    fetch_models(stack.settings.models, stack.settings.model_home, progress=True)
    cmd = [sys.executable, "-m", "cutout"]
    logs = stack.data_dir / "logs"
    say(f"starting the worker ({', '.join(stack.settings.models)}) and the API …")
    stack.servers.append(Server("worker", [*cmd, "worker"], logs / "worker.log", env=stack.env))
    stack.servers.append(Server("api", [*cmd, "api"], logs / "api.log", env=stack.env))
    for server in stack.servers[-2:]:
        server.start()
    wait_s3()
    if not _wait_ready(stack, url):
        if not stack.stopping:
            _warn(f"cutout up: the service did not become ready; logs in {logs}")
        return False
    say(f"ready in {stack.elapsed()}: a worker takes jobs")
    say(f"\nCutout is running at {url}  (API docs: {url}/openapi.json)")
    say(f"logs in {logs}; press Ctrl-C to stop")
    return True


def _supervise(stack: Stack) -> int:
    """Until a stop: restart the worker and the API when they exit (cutout/supervise.py);
    Redis and storage hold the data, and their exit stops the stack."""
    from cutout.supervise import Keeper

    keepers = {s.name: Keeper(s, say=_warn) for s in stack.servers if s.name in ("worker", "api")}
    while not stack.stopping:
        for server in stack.servers:
            if server.name in keepers:
                keepers[server.name].poll()
            elif not server.alive:
                _warn(f"cutout up: {server.name} exited unexpectedly; stopping\n" + server.tail())
                return 1
        time.sleep(0.3)
    say("\nstopping ...")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from cutout.stack import StackError, port_open, reserve_port
    from shared.errors import ModelUnavailable
    from shared.logs import setup_logging

    settings = settings_or_exit()
    setup_logging(settings.log_level, "text")
    port = args.port or settings.port
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_data_dir(data_dir)  # held until this process exits
    if lock is None:
        return 2
    if port_open(port, settings.host if settings.host != "0.0.0.0" else "127.0.0.1"):
        _warn(f"cutout up: port {port} is already in use (set CUTOUT_PORT)")
        return 2
    reserve_port(port)  # Redis and SeaweedFS start first and must not take it
    stack = Stack(settings, data_dir, _environment(settings, data_dir, port))

    def stop(*_: Any) -> None:
        stack.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    try:
        wait_s3 = _start_backing(stack)
        if not _start_service(stack, f"http://{host}:{port}", wait_s3):
            return 0 if stack.stopping else 1
        return _supervise(stack)
    except (StackError, ModelUnavailable) as exc:
        _warn(f"cutout up: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # API first (stop taking work), then the worker (hands back its task), then
        # storage and Redis last
        for server in reversed(stack.servers):
            server.stop(timeout=30 if server.name == "worker" else 15)
        if stack.servers:
            say("stopped")
