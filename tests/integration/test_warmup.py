"""A worker whose start is slow still gets working pool children, and a plain job never
waits for alpha matting's compilation (worker/warmup.py).

The slow start is real: both models (u2net's session takes seconds to create) loading
in pool children while CPU hogs keep every core busy. Celery checks that a child it
starts to *replace* one (a crash, ``worker_max_memory_per_child``) reports within
``worker_proc_alive_timeout`` (4 s); before the fix each child created its sessions
before reporting, so under the hogs every replacement was killed and replaced in turn
(measured with the old code: 11 replacements killed in 60 s, none came up).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import wait_for
from tests.integration.test_worker import celery_app, finished, photo_bytes, submit
from tests.procs import live_children

__all__ = ["celery_app"]  # the fixture, used by name below

HOGS = 4


def pool_children(worker) -> list[psutil.Process]:
    """The worker's pool processes (not its alpha matting warmer, while that runs, nor
    the warmer in the moment between its exit and its reaping, a zombie)."""
    return [child for child, line in live_children(worker.proc.pid) if "worker.warmup" not in line]


@pytest.fixture
def cpu_hogs() -> Iterator[None]:
    """Busy loops on every core while the worker starts (stopped at the end)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(10)


def test_slow_warm_up_still_gives_working_children(
    cpu_hogs: None, store, storage, celery_app, start_worker, model_home
) -> None:
    if not (model_home / "u2net.onnx").exists():
        pytest.skip("u2net weights missing: run `cutout models fetch`")
    worker = start_worker(
        {"CUTOUT_MODELS": "u2net,u2netp"},
        args=["--queues", "warmtest", "--concurrency", "2"],
    )
    jobs = [
        submit(store, storage, celery_app, photo_bytes((320, 240)), options, queue="warmtest")
        for options in (
            {"model": "u2net"},
            {"model": "u2netp"},
            {"model": "u2net", "alpha_matting": True},
            {"model": "u2netp", "alpha_matting": True},
        )
    ]
    for job_id in jobs:
        job = finished(store, job_id, timeout=600)
        assert job.status == "succeeded", job
    # both children have warmed up; then one dies and its replacement warms up under the
    # same load
    wait_for(lambda: worker.log_path.read_text(errors="replace").count("warm-up done") >= 2, 600)
    child = pool_children(worker)[0]
    child.kill()
    child.wait(30)
    more = [
        submit(
            store, storage, celery_app, photo_bytes((320, 240)), {"model": model}, queue="warmtest"
        )
        for model in ("u2net", "u2netp", "u2net", "u2netp")
    ]
    for job_id in more:
        job = finished(store, job_id, timeout=600)
        assert job.status == "succeeded", job
    wait_for(lambda: worker.log_path.read_text(errors="replace").count("warm-up done") >= 3, 600)
    log = worker.log_path.read_text(errors="replace")
    # no child was killed for reporting late; the replacement warmed up on its own
    assert "Timed out waiting for UP message" not in log
    assert len(pool_children(worker)) == 2
    # pymatting was prepared once, by the worker's warmer process (worker/warmup.py)
    assert log.count("alpha matting ready") == 1
    assert worker.proc.poll() is None
    os.killpg(worker.proc.pid, 0)  # the worker is still there


def test_plain_jobs_never_wait_for_alpha_matting(store, storage, celery_app, start_worker) -> None:
    """While alpha matting's numba code is being compiled (here the test holds the
    compilation's lock, as a long compilation on a loaded machine would: 47 s to minutes
    with an empty cache), the worker takes jobs: a plain job succeeds; a matting job
    waits for the compilation, then succeeds, and numba's cache is in NUMBA_CACHE_DIR.
    Before, the worker compiled in its main process before it took any job."""
    # a cache folder of this test's own (the lock is in it), kept across runs so that
    # only the first run compiles
    cache = Path(tempfile.gettempdir()) / "cutout-test-numba-cache"
    cache.mkdir(exist_ok=True)
    lock = open(cache / ".cutout-matting.lock", "a")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        worker = start_worker({"NUMBA_CACHE_DIR": str(cache)}, args=["--queues", "mattinggate"])
        plain = submit(
            store,
            storage,
            celery_app,
            photo_bytes((320, 240)),
            {"model": "u2netp"},
            queue="mattinggate",
        )
        assert finished(store, plain, timeout=300).status == "succeeded"
        matting = submit(
            store,
            storage,
            celery_app,
            photo_bytes((320, 240)),
            {"model": "u2netp", "alpha_matting": True},
            queue="mattinggate",
        )
        wait_for(lambda: store.get_job(matting).status == "processing", 120)
        # nothing was compiled yet: the plain job did not wait for it
        assert "alpha matting ready" not in worker.log_path.read_text(errors="replace")
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    assert finished(store, matting, timeout=900).status == "succeeded"
    assert list(cache.rglob("*.nbi")), "numba's cache is not in NUMBA_CACHE_DIR"
