"""Worker start-up that never delays a job that does not need what is still loading.

Three costs used to land in the wrong place:

- pymatting's numba code is compiled (or loaded from numba's cache) when pymatting is
  imported: ~28-40 s on an idle core without a cache, minutes on a loaded machine,
  under a second from the cache. It used to be imported in the worker's main process
  before the pool forked, so a first start with an empty cache took no job at all for
  that long (a fresh ``cutout up``: the first plain job waited 47 s). Now
  :func:`start_matting_warmer` starts a separate, low-priority process that imports
  pymatting and runs it once, which fills numba's on-disk cache, while the worker
  already takes jobs. The process that runs a matting job imports pymatting itself, on
  that job (0.5 s from the cache); one that arrives while the warmer still compiles
  waits for it (a lock file: :func:`matting_lock_path`, :func:`install_matting_gate`)
  rather than compiling a second time. ``NUMBA_CACHE_DIR`` decides where the cache lives: ``cutout
  up`` sets it to its data folder, the images to a volume (docs/operations.md).
  numba's default OpenMP threading layer aborts a forked child that uses it after its
  parent did, so a prefork worker uses numba's fork-safe ``workqueue`` layer (each child
  runs one job at a time; the threads pool keeps numba's default, which is thread-safe).
- Each child creates its ONNX Runtime sessions (u2net: ~3.7 s at load 1, far more on a
  busy machine). Celery kills a child that has not reported within
  ``worker_proc_alive_timeout`` (4 s by default), and the replacement started over.
  :func:`warm_in_background` creates them on a thread of the child after it reported;
  a job that arrives first waits for its own model's session only.
- The fast model loads last in that thread. :func:`fast_prospect` tells the heartbeat
  at once whether this process will serve fast mode (``loading``), so the API does not
  refuse fast jobs in the seconds before it is loaded (api/capabilities.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.abc
import importlib.util
import logging
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.contract.settings import Settings
    from worker.context import WorkerContext

log = logging.getLogger("cutout.worker")

# how long a new pool child may take to report to its parent. The child reports before
# it warms up (warm_in_background), so this only covers the fork and Celery's own child
# set-up, which took well under a second; 30 s rides out a machine at load 20.
PROC_ALIVE_TIMEOUT = 30.0
WARMER_NICENESS = 10  # the warmer yields the CPU to jobs
WARMER_HANDSHAKE_S = 10.0  # the worker waits this long for the warmer to take its lock
GATE_TIMEOUT_S = 1800.0  # a matting job waits this long for the warmer, then compiles


def matting_lock_path(worker_pid: int) -> Path:
    """The lock the warmer holds while it fills numba's cache: beside the cache when
    ``NUMBA_CACHE_DIR`` is set (workers that share a cache wait for one compilation),
    else one per worker in the temporary folder (no worker waits for another's)."""
    cache = os.environ.get("NUMBA_CACHE_DIR")
    if cache:
        return Path(cache) / ".cutout-matting.lock"
    return Path(tempfile.gettempdir()) / f"cutout-matting-{worker_pid}.lock"


def remove_worker_locks(worker_pid: int) -> None:
    """Remove the lock files of worker ``worker_pid`` (when it exits); a cache's stays."""
    paths = (warm_lock_path(worker_pid), matting_lock_path(worker_pid), duty_lock_path(worker_pid))
    for path in paths:
        if path.parent == Path(tempfile.gettempdir()):
            path.unlink(missing_ok=True)


def start_matting_warmer(pool: str) -> subprocess.Popen[bytes] | None:
    """Start the process that fills numba's cache for alpha matting, wait (at most
    WARMER_HANDSHAKE_S) until it holds its lock, and install the gate that makes a
    matting job wait for it. Never raises: without a warmer a matting job compiles."""
    if pool == "prefork":
        os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    lock = matting_lock_path(os.getpid())
    install_matting_gate(lock)
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.warmup", str(write), str(lock)],
            pass_fds=(write,),
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        log.exception("could not start the alpha matting warmer")
        return None
    finally:
        os.close(write)
    try:
        select.select([read], [], [], WARMER_HANDSHAKE_S)
    finally:
        os.close(read)
    threading.Thread(target=_reap, args=(proc,), name="cutout-matting-warmer", daemon=True).start()
    return proc


def _reap(proc: subprocess.Popen[bytes]) -> None:
    code = proc.wait()
    if code not in (0, -15):
        log.warning(
            "the alpha matting warmer failed; a matting job compiles it", extra={"rc": code}
        )


def _warm(handshake_fd: int, path: Path) -> int:
    """The warmer process: lock, tell the worker, import and run pymatting once."""
    from shared.contract.settings import SettingsError, load_settings
    from shared.logs import setup_logging

    try:
        settings = load_settings()
        setup_logging(settings.log_level, settings.log_format)
    except SettingsError:
        setup_logging()
    os.nice(WARMER_NICENESS)

    told: list[bool] = []

    def tell_the_worker() -> None:
        if not told:  # once: the descriptor's number may be reused after it is closed
            told.append(True)
            with contextlib.suppress(OSError):  # the worker stopped waiting: nobody to tell
                os.write(handshake_fd, b"1")
                os.close(handshake_fd)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")  # noqa: SIM115 - held until this process exits
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            tell_the_worker()
        except BlockingIOError:
            # another worker's warmer fills the same cache: jobs wait for that one
            tell_the_worker()
            fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError as exc:
        log.warning("no lock for the alpha matting warmer: %s", exc)
        tell_the_worker()
    started = time.monotonic()
    from worker.engine.matting import warm_alpha_matting

    warm_alpha_matting()
    log.info(
        "alpha matting ready",
        extra={
            "seconds": round(time.monotonic() - started, 2),
            "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR") or "(numba's default)",
        },
    )
    return 0


class _MattingGate(importlib.abc.MetaPathFinder):
    """Holds the first import of pymatting in this process until the warmer is done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.passed = False
        self.lock = threading.Lock()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "pymatting" and not self.passed:
            with self.lock:
                if not self.passed:
                    wait_for_warmer(self.path)
                    self.passed = True
        return None  # the normal finders import it


def install_matting_gate(path: Path) -> None:
    """Make this process (and the children it forks) wait for the warmer holding
    ``path`` before the first import of pymatting."""
    if not any(isinstance(finder, _MattingGate) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MattingGate(path))


def wait_for_warmer(path: Path, timeout: float = GATE_TIMEOUT_S) -> None:
    """Block until no warmer holds the lock ``path`` (at most ``timeout`` seconds)."""
    try:
        handle = open(path, "a")  # noqa: SIM115
    except OSError:
        return
    with handle:
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.warning("alpha matting: gave up waiting for the warmer; compiling")
                    return
                if not said:
                    log.info("alpha matting: waiting for its compilation (worker start)")
                    said = True
                time.sleep(0.2)
        fcntl.flock(handle, fcntl.LOCK_UN)


def fast_prospect(settings: Settings) -> str:
    """``loading`` when this process will load (or build) the fast model at start, else
    ``unavailable``: cheap checks only (nothing imported), for the first heartbeat."""
    from worker.engine.fast import fast_paths

    if settings.fast == "off" or "u2net" not in settings.models:
        return "unavailable"
    if any(importlib.util.find_spec(name) is None for name in ("openvino", "nncf")):
        return "unavailable"
    if settings.fast == "build" or fast_paths(settings.model_home)[2].is_file():
        return "loading"
    return "unavailable"


def duty_lock_path(worker_pid: int) -> Path:
    """The lock the scheduler of one of worker ``worker_pid``'s pool children holds while
    it polls for all of them (worker/scheduler.py ``Duty``)."""
    return Path(tempfile.gettempdir()) / f"cutout-scheduler-{worker_pid}.lock"


def warm_lock_path(worker_pid: int) -> Path:
    """The lock the pool children of worker ``worker_pid`` warm up under, one at a time
    (``cutout worker`` removes it when it exits: :func:`remove_worker_locks`)."""
    return Path(tempfile.gettempdir()) / f"cutout-warm-up-{worker_pid}.lock"


def warm_in_background(ctx: WorkerContext) -> threading.Thread:
    """Create this child's sessions on a daemon thread; log how long it took.

    The children of one worker warm up one at a time (a lock file named after their
    parent): at a worker's start they all begin at once, and each warm-up (the models'
    sessions, then the fast model: seconds of CPU) competed with the first jobs for the
    same cores. A job never waits for this lock: it loads the model it needs itself."""

    def run() -> None:
        started = time.monotonic()
        try:
            with open(warm_lock_path(os.getppid()), "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                ctx.warm()
        except Exception:  # a job that needs the model reports it
            log.exception("warm-up failed; sessions are created by the first job instead")
            return
        log.info("warm-up done", extra={"seconds": round(time.monotonic() - started, 2)})

    thread = threading.Thread(target=run, name="cutout-warm-up", daemon=True)
    thread.start()
    return thread


if __name__ == "__main__":
    raise SystemExit(_warm(int(sys.argv[1]), Path(sys.argv[2])))
