"""Delayed work without Celery ETAs, and the sweeps that keep jobs from getting lost.

Celery's Redis transport keeps an ETA task unacknowledged in the worker until it is due,
and redelivers it after ``visibility_timeout``: a webhook retry due in 10 h would be
delivered twice. So delayed tasks live in a Redis sorted set scored by due time, and a
small thread moves due entries into their queue: one per pool child of a prefork worker
(started in ``worker_process_init``, since a thread does not survive the fork), one in
the worker's own process for the solo and threads pools (worker/celery_app.py). Every
thread heartbeats; of a prefork worker's children only the one holding the worker's
lock file polls (``Duty``). The move is one atomic Lua step, so several threads (of
several workers) never send one entry twice.

The same thread sends batch items to ``bulk``, a window per tenant (worker/fair.py), and
re-queues jobs stuck in ``processing`` after their worker vanished
(the task's time limit has passed), and, in the same sweep, re-sends jobs ``queued`` for
long whose message the broker lost (worker/reconcile.py). A message a dead worker held
but had not started (its job still ``queued``) stays in the broker's unacked set and is
delivered again by kombu after ``visibility_timeout``: late, never lost.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from shared.contract.tasks import PROCESS_JOB
from shared.errors import CutoutError
from shared.s3.keys import is_upload_of, job_prefixes
from shared.stores.sweeps import DUE_KEY, SWEEP_LOCK
from shared.stores.workerstore import WorkerStore
from worker.fair import Dispatcher
from worker.outcome import fail_after_worker_loss
from worker.reconcile import Reconciler
from worker.warmup import duty_lock_path

if TYPE_CHECKING:
    from worker.context import WorkerContext

log = logging.getLogger("cutout.scheduler")

HEARTBEAT_EVERY = 5.0
#: seconds before retention entries whose objects could not be deleted are tried again
EXPIRE_RETRY_SECONDS = 60.0


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Duty:
    """Whether this process polls for its worker: the first pool child to take the lock
    file keeps it until it exits, and the kernel releases it however the child ends, so
    another takes over on its next pass (0.5 s). Each pass of every child was two round
    trips to Redis (the delay set and the dispatcher's check) twice a second; with the
    lock a worker of N children makes them once, whatever N."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self._held = False

    def held(self) -> bool:
        if self._held:
            return True
        if self._handle is None:
            self._handle = open(self.path, "a")  # noqa: SIM115 - open while the process lives
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        self._held = True
        return True


class Scheduler(threading.Thread):
    """Moves due entries into their queues; sweeps stuck jobs now and then."""

    def __init__(
        self,
        ctx: WorkerContext,
        interval: float = 0.5,
        sweep_every: float | None = None,
        *,
        pool_child: bool = False,
    ) -> None:
        super().__init__(name="cutout-scheduler", daemon=True)
        self.ctx = ctx
        self.store: WorkerStore = ctx.store
        self.interval = interval
        self.sweep_every = sweep_every or min(30.0, ctx.settings.task_time_limit / 2)
        self.stopping = threading.Event()
        # batch items into `bulk`, a window per tenant (worker/fair.py)
        self.dispatcher = Dispatcher(ctx)
        # queued jobs whose message the broker lost (worker/reconcile.py); a suspect is
        # confirmed by a scan at least half a sweep later
        self.reconciler = Reconciler(ctx, confirm_after=self.sweep_every / 2)
        # one pool child of a worker polls for all of them (each heartbeats)
        self.duty = Duty(duty_lock_path(os.getppid() if pool_child else os.getpid()))

    def run(self) -> None:
        last_sweep = last_beat = 0.0
        while not self.stopping.wait(self.interval):
            try:
                if time.monotonic() - last_beat > HEARTBEAT_EVERY:
                    last_beat = time.monotonic()
                    self.heartbeat()
                if not self.duty.held():
                    continue
                self.release_due()
                self.dispatcher.dispatch()
                if time.monotonic() - last_sweep > self.sweep_every:
                    last_sweep = time.monotonic()
                    self.sweep()
                    self.expire()
            except (CutoutError, OSError, Exception) as exc:  # noqa: BLE001 - keep running
                log.warning("scheduler pass failed: %s", exc)

    def heartbeat(self) -> None:
        """Tell /readyz and /metrics this worker process is alive, and what it runs on."""
        settings = self.ctx.settings
        engine = self.ctx._engine
        info = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "device": settings.device,
            "models": list(settings.models),
            "threads": settings.effective_ort_threads,
            "providers": engine.providers(settings.models[0]) if engine is not None else [],
            "rss_bytes": _rss(),
            # the API refuses fast jobs while no live worker serves them (api/capabilities.py);
            # one still loading (or building) its fast model serves them: they wait for it
            "fast": self.ctx.fast_state in ("loading", "available"),
            "fast_state": self.ctx.fast_state,
        }
        self.store.heartbeat(f"{socket.gethostname()}.{os.getpid()}", info)

    def expire(self) -> int:
        """Delete the stored input and result of jobs past ``CUTOUT_RETENTION``.

        Their Redis records expire by TTL on their own; the storage keys of each expired
        job are listed in a sorted set by expiry time (shared/stores/jobs.py).
        """
        removed = 0
        entries = self.store.pop_expired()
        for done, entry in enumerate(entries):
            try:
                removed += self._delete_stored(entry)
            except Exception:
                # storage is down: this entry and the rest are due again later, so their
                # objects are still deleted once it is back (popped, they were forgotten)
                self.store.sweeps.put_back_expired(entries[done:], EXPIRE_RETRY_SECONDS)
                raise
        if removed:
            log.info("retention: deleted stored objects", extra={"objects": removed})
        return removed

    def _delete_stored(self, entry: dict[str, Any]) -> int:
        """The stored objects of one expired entry: its job's, and its upload's if any."""
        removed, tenant, job_id = 0, entry["tenant"], entry["job"]
        if job_id:  # None: an upload slot that no job took up in time
            for prefix in job_prefixes(tenant, job_id):
                removed += self.ctx.storage.delete_prefix(prefix)
        if entry.get("input") and is_upload_of(entry["input"], tenant):
            removed += self.ctx.storage.delete_prefix(entry["input"])
        return removed

    def stop(self) -> None:
        self.stopping.set()

    def release_due(self) -> int:
        items = self.store.sweeps.pop_due(100)
        for raw in items:
            entry = json.loads(raw)
            try:
                self.ctx.app.send_task(entry["task"], args=entry["args"], queue=entry["queue"])
            except Exception:
                # put it back so it is not lost; try again on the next pass
                self.store.sweeps.put_back_due(raw, 5)
                raise
        return len(items)

    def sweep(self) -> int:
        """Take up jobs whose worker vanished: ``processing`` past their run's deadline.

        Such a job goes back to ``queued`` (its batch counts with it) and then its message
        to its queue, so one dead run is re-queued exactly once, however long the queue
        it waits in: while it stays ``queued`` this sweep no longer sees it. (Leaving it
        ``processing`` re-sent it on every sweep until a worker took it up; behind a long
        queue the copies ran side by side, and the third copy failed the job with
        ``processing_failed`` although its worker had died once.) The dead run already
        counted in ``attempts``; a job started ``max_attempts`` times fails here with
        ``processing_failed`` instead of going round again.
        """
        # one sweeper at a time across all workers
        if not self.store.sweeps.take_sweep_lock(max(5, int(self.sweep_every))):
            return 0
        taken = self._sweep_processing()
        try:
            self.reconciler.reconcile()
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("reconcile pass failed: %s", exc)
        try:
            # metric totals of processes that died without stopping (shared/stores/jobstats.py)
            self.store.fold_stale_metrics()
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("metric fold failed: %s", exc)
        return taken

    def _sweep_processing(self) -> int:
        store = self.store
        taken = 0
        # scored by each run's deadline: past its hard time limit a run is surely dead
        for job_id in store.sweeps.overdue_runs(500):
            job = store.get_job(job_id)
            if job is None or job.status != "processing":
                store.sweeps.forget_run(job_id)
                continue
            fields = {
                "job_id": job_id,
                "batch_id": job.batch_id,
                "tenant": job.tenant,
            }
            if (job.attempts or 0) >= self.ctx.settings.max_attempts:
                fail_after_worker_loss(self.ctx, job)
                taken += 1
                continue
            # state first, then the message: a job is never running while it says queued
            if not store.transition(job_id, "queued", ("processing",)).applied:
                continue
            try:
                self.ctx.app.send_task(PROCESS_JOB, args=[job_id], queue=job.queue or "interactive")
            except Exception:
                # no message went out: back to processing, due now, for the next sweep
                store.transition(job_id, "processing", ("queued",), run_deadline=time.time())
                raise
            taken += 1
            store.record_retry("worker_lost")
            log.warning(
                "re-queued a job stuck in processing",
                extra={**fields, "attempts": job.attempts},
            )
        return taken


__all__ = ["DUE_KEY", "SWEEP_LOCK", "Scheduler"]
