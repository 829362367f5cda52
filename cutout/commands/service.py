"""``cutout api`` and ``cutout worker``: running the service (``cutout up``: up.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from cutout.commands import settings_or_exit
from cutout.commands.up import cmd_up
from shared.contract.tasks import QUEUES
from worker.startup import POOLS

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
        choices=POOLS,
        default=None,
        help="pool (default prefork on CPU, solo with CUTOUT_DEVICE=cuda)",
    )
    worker.set_defaults(func=cmd_worker)


# -- cutout api -----------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from api.auth import BindRefused, check_bind
    from shared.logs import setup_logging

    settings = settings_or_exit("api")
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
    """The worker's start-up policy (pool, CUDA and fork, batching) is worker/startup.py's."""
    from shared.logs import setup_logging
    from worker.startup import StartRefused, start

    settings = settings_or_exit("worker")
    setup_logging(settings.log_level, settings.log_format)
    try:
        return start(settings, args.queues, args.pool, args.concurrency, warn=_say_worker)
    except StartRefused as exc:
        _say_worker(str(exc))
        return exc.exit_code


def _say_worker(message: str) -> None:
    print(f"cutout worker: {message}", file=sys.stderr)
