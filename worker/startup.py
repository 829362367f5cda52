"""How a worker starts (``cutout worker`` calls :func:`start`): the model weights fetched
before the pool forks, the pool and its size, what CUDA and batching require of them, the
alpha matting warmer, the GPU check before Celery says ready, and Celery's own arguments.

A start that cannot work stops with :class:`StartRefused`, whose message names the
setting or flag and whose ``exit_code`` the command returns (2: a combination that is
wrong, 1: something missing on this machine).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from shared.contract.settings import Settings

POOLS = ("prefork", "solo", "threads")


class StartRefused(Exception):
    """The worker cannot start; the message says why, ``exit_code`` is the process's."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Pool:
    """Celery's pool (``prefork``, ``solo`` or ``threads``) and its processes or threads."""

    name: str
    concurrency: int


def choose_pool(
    settings: Settings,
    pool: str | None = None,
    concurrency: int = 0,
    warn: Callable[[str], None] = print,
) -> Pool:
    """The pool asked for, else threads with ``CUTOUT_BATCH_SIZE`` > 1 (threads meet at
    inference: worker/engine/batching.py, which needs them in one process), solo with
    ``CUTOUT_DEVICE=cuda`` (CUDA does not survive fork), prefork otherwise; its size the
    one asked for, else ``CUTOUT_WORKER_CONCURRENCY`` (or the CPU count), and at least
    one thread per job of a batch. CUDA with prefork is refused (exit 2); batching with
    another pool than threads only warns, each call then running one job."""
    batching = settings.batch_size > 1
    name = pool or ("threads" if batching else "solo" if settings.device == "cuda" else "prefork")
    if settings.device == "cuda" and name == "prefork":
        raise StartRefused("CUDA does not survive fork; use --pool solo or threads", 2)
    size = concurrency or settings.effective_concurrency
    if batching and name == "threads":
        size = max(size, settings.batch_size)
    elif batching:
        warn(f"CUTOUT_BATCH_SIZE needs --pool threads; {name} runs one job per call")
    return Pool(name, size)


def fetch_weights(settings: Settings) -> None:
    """The models' weights, fetched once here before the pool forks, never inside a task
    (a missing file that cannot be fetched: exit 1)."""
    from shared.errors import ModelUnavailable
    from worker.engine import fetch_models

    try:
        fetch_models(settings.models, settings.model_home, progress=sys.stderr.isatty())
    except ModelUnavailable as exc:
        raise StartRefused(str(exc), 1) from None


def check_device() -> None:
    """A CUDA worker creates its sessions before Celery starts and says ready: ONNX
    Runtime falls back to CPU silently, and a GPU worker on CPU must not take jobs."""
    from worker import context
    from worker.engine import DeviceUnavailable

    try:
        context.get().warm()
    except DeviceUnavailable as exc:
        raise StartRefused(
            f"CUTOUT_DEVICE=cuda but the CUDAExecutionProvider is not active: {exc}", 1
        ) from None


def celery_argv(settings: Settings, queues: str, pool: Pool) -> list[str]:
    """``celery worker``'s arguments: one process for solo, named by host and pid."""
    return [
        "worker",
        "--queues",
        queues,
        "--pool",
        pool.name,
        "--concurrency",
        str(1 if pool.name == "solo" else pool.concurrency),
        "--hostname",
        f"cutout@{socket.gethostname()}.{os.getpid()}",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        settings.log_level.upper(),
    ]


def start(
    settings: Settings,
    queues: str,
    pool: str | None = None,
    concurrency: int = 0,
    warn: Callable[[str], None] = print,
) -> int:
    """Run a worker until Celery stops; :class:`StartRefused` when it cannot start."""
    from worker.warmup import remove_worker_locks, start_matting_warmer

    fetch_weights(settings)
    chosen = choose_pool(settings, pool, concurrency, warn)
    # alpha matting's numba code compiles in a process of its own while this worker
    # takes jobs; a matting job waits for it, no other job does (worker/warmup.py)
    warmer = start_matting_warmer(chosen.name)
    try:
        from worker.celery_app import create_worker_app

        app = create_worker_app(settings, pool=chosen.name)
        if settings.device == "cuda":
            check_device()
        app.worker_main(celery_argv(settings, queues, chosen))
        return 0
    finally:
        if warmer is not None and warmer.poll() is None:
            warmer.terminate()
        remove_worker_locks(os.getpid())
