"""``cutout up``, ``cutout api`` and ``cutout worker``: running the service."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from shared.tasks import QUEUES

log = logging.getLogger("cutout")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    up = subparsers.add_parser(
        "up",
        help="run the whole service on this machine (Redis, S3, API, one worker)",
        description="Runs Redis, S3-compatible storage (SeaweedFS), the API and one worker, "
        "with data in CUTOUT_DATA_DIR. Ctrl-C or SIGTERM stops everything.",
    )
    up.add_argument("--port", type=int, help="API port (default CUTOUT_PORT or 8080)")
    up.set_defaults(func=cmd_up)

    api = subparsers.add_parser("api", help="run the API (gunicorn) against existing Redis and S3")
    api.add_argument("--workers", type=int, default=0, help="gunicorn processes (default: 2)")
    api.add_argument("--threads", type=int, default=8, help="threads per gunicorn process")
    api.set_defaults(func=cmd_api)

    worker = subparsers.add_parser("worker", help="run one Celery worker (CPU or GPU)")
    worker.add_argument(
        "--queues", default=",".join(QUEUES), help="queues to consume, in priority order"
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="pool processes (default CUTOUT_WORKER_CONCURRENCY)",
    )
    worker.add_argument(
        "--pool",
        choices=("prefork", "solo", "threads"),
        default=None,
        help="pool (default prefork on CPU, solo with CUTOUT_DEVICE=cuda)",
    )
    worker.set_defaults(func=cmd_worker)


def _settings() -> Any:
    from shared.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        print(f"cutout: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# -- cutout api -----------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from api.auth import BindRefused, check_bind
    from shared.logs import setup_logging

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    try:
        # fail here, once, before gunicorn forks (create_app checks again per process)
        check_bind(settings)
    except BindRefused as exc:
        print(f"cutout api: {exc}", file=sys.stderr)
        return 2
    # several gunicorn processes: /metrics adds up every process's counters from files
    # in this folder, which must start empty
    metrics_dir = Path(tempfile.mkdtemp(prefix="cutout-metrics-"))
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))

    class Api(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", args.workers or 2)
            # gthread, with gunicorn's own 400/414/431 answers as problem+json
            self.cfg.set("worker_class", "api.server.ProblemThreadWorker")
            self.cfg.set("threads", args.threads)
            # /api/remove waits for its job; keep the worker alive past that wait
            self.cfg.set("timeout", int(settings.sync_timeout) + 30)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("accesslog", None)
            self.cfg.set("proc_name", "cutout-api")
            self.cfg.set("child_exit", _child_exit)

        def load(self) -> Any:
            from api.app import create_app

            return create_app(settings)

    Api().run()
    return 0


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# -- cutout worker --------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from shared.errors import ModelUnavailable
    from shared.logs import setup_logging
    from worker.celery_app import create_worker_app
    from worker.engine import fetch_models

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    if not settings.redis_url:
        # no CUTOUT_S3_ENDPOINT_URL is fine: boto3 then talks to AWS S3 itself
        print("cutout worker: CUTOUT_REDIS_URL must be set (or use `cutout up`)", file=sys.stderr)
        return 2
    try:
        # fetched once here, before the pool forks; never inside a task
        fetch_models(settings.models, settings.model_home, progress=sys.stderr.isatty())
    except ModelUnavailable as exc:
        print(f"cutout worker: {exc}", file=sys.stderr)
        return 1
    # CUTOUT_BATCH_SIZE > 1: threads meet at inference (worker.engine.batching), which
    # needs them in one process
    batching = settings.batch_size > 1
    pool = args.pool or (
        "threads" if batching else "solo" if settings.device == "cuda" else "prefork"
    )
    if settings.device == "cuda" and pool == "prefork":
        print(
            "cutout worker: CUDA does not survive fork; use --pool solo or threads", file=sys.stderr
        )
        return 2
    concurrency = args.concurrency or settings.effective_concurrency
    if batching and pool == "threads":
        # one thread per job of a batch, at least
        concurrency = max(concurrency, settings.batch_size)
    elif batching:
        print(
            f"cutout worker: CUTOUT_BATCH_SIZE needs --pool threads; {pool} runs one job per call",
            file=sys.stderr,
        )
    from worker.warmup import preload_alpha_matting

    # before the pool forks: every child inherits pymatting's compiled code
    preload_alpha_matting(pool)
    app = create_worker_app(settings, pool=pool)
    if settings.device == "cuda":
        # create the sessions now, before Celery starts and says ready: ONNX Runtime falls
        # back to CPU silently, and a GPU worker on CPU must not take jobs
        from worker import context
        from worker.engine import DeviceUnavailable

        try:
            context.get().warm()
        except DeviceUnavailable as exc:
            print(
                "cutout worker: CUTOUT_DEVICE=cuda but the CUDAExecutionProvider is not "
                f"active: {exc}",
                file=sys.stderr,
            )
            return 1
    argv = [
        "worker",
        "--queues",
        args.queues,
        "--pool",
        pool,
        "--concurrency",
        str(1 if pool == "solo" else concurrency),
        "--hostname",
        f"cutout@{socket.gethostname()}.{os.getpid()}",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        settings.log_level.upper(),
    ]
    app.worker_main(argv)
    return 0


# -- cutout up ------------------------------------------------------------------------


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


def _wait_http(url: str, timeout: float, servers: list[Any]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for server in servers:
            if not server.alive:
                return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        print(
            f"cutout up: {data_dir} is in use by another cutout up (pid {pid}); stop it, "
            "or give this one its own CUTOUT_DATA_DIR",
            file=sys.stderr,
        )
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def cmd_up(args: argparse.Namespace) -> int:
    from cutout.stack import (
        Server,
        StackError,
        WeedPorts,
        free_port,
        port_open,
        redis_ready,
        redis_server,
        s3_ready,
        weed_server,
    )
    from cutout.supervise import Keeper
    from shared.logs import setup_logging

    settings = _settings()
    setup_logging(settings.log_level, "text")
    port = args.port or settings.port
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_data_dir(data_dir)  # held until this process exits
    if lock is None:
        return 2
    if port_open(port, settings.host if settings.host != "0.0.0.0" else "127.0.0.1"):
        print(f"cutout up: port {port} is already in use (set CUTOUT_PORT)", file=sys.stderr)
        return 2

    env = dict(os.environ)
    env.update(_credentials(data_dir))
    env["CUTOUT_PORT"] = str(port)
    env["CUTOUT_DATA_DIR"] = str(data_dir)
    servers: list[Server] = []
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if not settings.redis_url:
            rport = free_port()
            redis = redis_server(data_dir / "redis", rport).start()
            servers.append(redis)
            redis.wait_until(redis_ready(rport), 30)
            env["CUTOUT_REDIS_URL"] = f"redis://127.0.0.1:{rport}/0"
            print(f"redis    127.0.0.1:{rport} (data in {data_dir / 'redis'})")
        if not settings.s3_endpoint_url:
            ports = WeedPorts.pick()
            weed = weed_server(data_dir / "s3", ports, settings.s3_bucket, env).start()
            servers.append(weed)
            endpoint = f"http://127.0.0.1:{ports.s3}"
            weed.wait_until(s3_ready(endpoint, settings.s3_bucket, env), 90)
            env["CUTOUT_S3_ENDPOINT_URL"] = endpoint
            print(f"s3       {endpoint} bucket {settings.s3_bucket} (data in {data_dir / 's3'})")

        from worker.engine import fetch_models

        fetch_models(settings.models, settings.model_home, progress=True)

        cmd = [sys.executable, "-m", "cutout"]
        logs = data_dir / "logs"
        worker = Server("worker", [*cmd, "worker"], logs / "worker.log", env=env).start()
        api = Server("api", [*cmd, "api"], logs / "api.log", env=env).start()
        servers += [worker, api]
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        url = f"http://{host}:{port}"
        if not _wait_http(f"{url}/readyz", 60, servers):
            for server in servers:
                if not server.alive:
                    print(f"cutout up: {server.name} stopped:\n{server.tail()}", file=sys.stderr)
            print("cutout up: the API did not become ready; logs in " + str(logs), file=sys.stderr)
            return 1
        print(f"\nCutout is running at {url}  (API docs: {url}/openapi.json)")
        print(f"logs in {logs}; press Ctrl-C to stop", flush=True)
        # the worker and the API are restarted when they exit (cutout/supervise.py);
        # Redis and storage hold the data, and their exit stops the stack
        keepers = {s.name: Keeper(s, say=_say) for s in (worker, api)}
        while not stopping:
            for server in servers:
                if server.name in keepers:
                    keepers[server.name].poll()
                elif not server.alive:
                    print(
                        f"cutout up: {server.name} exited unexpectedly; stopping\n" + server.tail(),
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.3)
        print("\nstopping ...", flush=True)
        return 0
    except StackError as exc:
        print(f"cutout up: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # API first (stop taking work), then the worker (hands back its task), then
        # storage and Redis last
        for server in reversed(servers):
            server.stop(timeout=30 if server.name == "worker" else 15)
        if servers:
            print("stopped", flush=True)
