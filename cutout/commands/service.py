"""``cutout api`` and ``cutout worker``: running the service (``cutout up``: up.py)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from cutout.commands.up import cmd_up, load_settings_or_exit
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


# -- cutout api -----------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from api.auth import BindRefused, check_bind
    from shared.logs import setup_logging

    settings = load_settings_or_exit()
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
    from worker.engine import fetch_models

    settings = load_settings_or_exit()
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
    from worker.warmup import remove_worker_locks, start_matting_warmer

    # alpha matting's numba code compiles in a process of its own while this worker
    # takes jobs; a matting job waits for it, no other job does (worker/warmup.py)
    warmer = start_matting_warmer(pool)
    try:
        return _run_worker(args, settings, pool, concurrency)
    finally:
        if warmer is not None and warmer.poll() is None:
            warmer.terminate()
        remove_worker_locks(os.getpid())


def _run_worker(args: argparse.Namespace, settings: Any, pool: str, concurrency: int) -> int:
    from worker.celery_app import create_worker_app

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
