"""Worker start-up that never delays a pool child's first report, and never a job.

Two costs used to land in the wrong place:

- pymatting's numba code is compiled (or loaded from numba's cache) when pymatting is
  imported: ~40 s on an idle core without a cache, 6 min on our loaded 2-core machine,
  1-10 s from the cache. It happened in the first alpha-matting job of every pool child
  (the first such request took 43 s). :func:`preload_alpha_matting` imports it in the
  worker's main process before the pool forks, so every child, including those that
  replace a child later, inherits the compiled code (first call in a child: 0.1 s).
  numba's default OpenMP threading layer aborts a forked child that uses it
  ("fork() called from a process already using GNU OpenMP"), so a prefork worker uses
  numba's fork-safe ``workqueue`` layer (each child runs one job at a time; the threads
  pool keeps numba's default, which is thread-safe). Set ``NUMBA_CACHE_DIR`` to a
  persistent writable folder so the compilation happens once, not at every start
  (docs/operations.md).
- Each child creates its ONNX Runtime sessions (u2net: ~3.7 s at load 1, far more on a
  busy machine). Celery kills a child that has not reported within
  ``worker_proc_alive_timeout`` (4 s by default), and the replacement started over: three
  children in a row were killed and the worker had no capacity for 12 s.
  :func:`warm_in_background` creates them on a thread of the child after it reported;
  a job that arrives first waits for its own model's session only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.context import WorkerContext

log = logging.getLogger("cutout.worker")

# how long a new pool child may take to report to its parent. The child reports before
# it warms up (warm_in_background), so this only covers the fork and Celery's own child
# set-up, which took well under a second; 30 s rides out a machine at load 20.
PROC_ALIVE_TIMEOUT = 30.0


def preload_alpha_matting(pool: str) -> float:
    """Import pymatting (compiling or loading its numba code) in this process; returns
    the seconds it took. Call before the pool forks; never raises (a worker without
    alpha matting still serves every other option)."""
    if pool == "prefork":
        os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    started = time.monotonic()
    try:
        import pymatting  # noqa: F401 - imported for its compiled code
    except Exception:  # matting jobs will report the problem themselves
        log.exception("could not prepare alpha matting")
        return time.monotonic() - started
    seconds = time.monotonic() - started
    log.info(
        "alpha matting ready",
        extra={
            "seconds": round(seconds, 2),
            "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR") or "(numba's default)",
        },
    )
    return seconds


def warm_in_background(ctx: WorkerContext) -> threading.Thread:
    """Create this child's sessions on a daemon thread; log how long it took."""

    def run() -> None:
        started = time.monotonic()
        try:
            ctx.warm()
        except Exception:  # a job that needs the model reports it
            log.exception("warm-up failed; sessions are created by the first job instead")
            return
        log.info("warm-up done", extra={"seconds": round(time.monotonic() - started, 2)})

    thread = threading.Thread(target=run, name="cutout-warm-up", daemon=True)
    thread.start()
    return thread
