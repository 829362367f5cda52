"""Delayed work without Celery ETAs, and the sweeps that keep jobs from getting lost.

Celery's Redis transport keeps an ETA task unacknowledged in the worker until it is due,
and redelivers it after ``visibility_timeout``: a webhook retry due in 10 h would be
delivered twice. So delayed tasks live in a Redis sorted set scored by due time, and a
small thread in every worker's main process moves due entries into their queue. The
move is one atomic Lua step, so several workers never send one entry twice.

The same thread re-queues jobs stuck in ``processing`` after their worker vanished
(the task's time limit has passed). A message a dead worker held but had not started
(its job still ``queued``) stays in the broker's unacked set and is delivered again by
kombu after ``visibility_timeout``: late, never lost.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from shared import telemetry
from shared.errors import CutoutError
from shared.store import PREFIX, PROCESSING_KEY

log = logging.getLogger("cutout.scheduler")

HEARTBEAT_EVERY = 5.0


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


DUE_KEY = f"{PREFIX}due"
SWEEP_LOCK = f"{PREFIX}sweep-lock"


# pop up to ARGV[2] members due at or before ARGV[1]
_POP_DUE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #items > 0 then redis.call('ZREM', KEYS[1], unpack(items)) end
return items
"""


def schedule(redis_client: Any, task: str, args: list[Any], queue: str, delay: float) -> None:
    """Send ``task`` with ``args`` to ``queue`` after ``delay`` seconds (durably, in Redis)."""
    member = json.dumps({"task": task, "args": args, "queue": queue, "at": time.time()})
    redis_client.zadd(DUE_KEY, {member: time.time() + delay})


class Scheduler(threading.Thread):
    """Moves due entries into their queues; sweeps stuck jobs now and then."""

    def __init__(self, ctx: Any, interval: float = 0.5, sweep_every: float | None = None) -> None:
        super().__init__(name="cutout-scheduler", daemon=True)
        self.ctx = ctx
        self.interval = interval
        self.sweep_every = sweep_every or min(30.0, ctx.settings.task_time_limit / 2)
        self.stopping = threading.Event()
        self._pop = ctx.store.r.register_script(_POP_DUE)

    def run(self) -> None:
        last_sweep = last_beat = 0.0
        while not self.stopping.wait(self.interval):
            try:
                if time.monotonic() - last_beat > HEARTBEAT_EVERY:
                    last_beat = time.monotonic()
                    self.heartbeat()
                self.release_due()
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
            # the API refuses fast jobs while no live worker serves them (api/capabilities.py)
            "fast": bool(engine is not None and engine.fast_ready),
        }
        telemetry.heartbeat(self.ctx.store.r, f"{socket.gethostname()}.{os.getpid()}", info)

    def expire(self) -> int:
        """Delete the stored input and result of jobs past ``CUTOUT_RETENTION``.

        Their Redis records expire by TTL on their own; the storage keys of each expired
        job are listed in a sorted set by expiry time (shared/store.py).
        """
        removed = 0
        for entry in self.ctx.store.pop_expired():
            tenant, job_id = entry["tenant"], entry["job"]
            if job_id:  # None: an upload slot that no job took up in time
                removed += self.ctx.storage.delete_prefix(f"inputs/{tenant}/{job_id}/")
                removed += self.ctx.storage.delete_prefix(f"outputs/{tenant}/{job_id}/")
            if entry.get("input") and entry["input"].startswith(f"uploads/{tenant}/"):
                removed += self.ctx.storage.delete_prefix(entry["input"])
        if removed:
            log.info("retention: deleted stored objects", extra={"objects": removed})
        return removed

    def stop(self) -> None:
        self.stopping.set()

    def release_due(self) -> int:
        items = self._pop(keys=[DUE_KEY], args=[time.time(), 100])
        for raw in items:
            entry = json.loads(raw)
            try:
                self.ctx.app.send_task(entry["task"], args=entry["args"], queue=entry["queue"])
            except Exception:
                # put it back so it is not lost; try again on the next pass
                self.ctx.store.r.zadd(DUE_KEY, {raw: time.time() + 5})
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
        from shared.tasks import PROCESS_JOB
        from worker.tasks import fail_after_worker_loss

        store = self.ctx.store
        r = store.r
        # one sweeper at a time across all workers
        if not r.set(SWEEP_LOCK, "1", nx=True, ex=max(5, int(self.sweep_every))):
            return 0
        taken = 0
        # scored by each run's deadline: past its hard time limit a run is surely dead
        for job_id in r.zrangebyscore(PROCESSING_KEY, "-inf", time.time(), start=0, num=500):
            job = store.get_job(job_id)
            if job is None or job["status"] != "processing":
                r.zrem(PROCESSING_KEY, job_id)
                continue
            fields = {
                "job_id": job_id,
                "batch_id": job.get("batch_id"),
                "tenant": job.get("tenant"),
            }
            if (job.get("attempts") or 0) >= self.ctx.settings.max_attempts:
                fail_after_worker_loss(self.ctx, job)
                taken += 1
                continue
            # state first, then the message: a job is never running while it says queued
            if not store.transition(job_id, "queued", ("processing",)).applied:
                continue
            try:
                self.ctx.app.send_task(
                    PROCESS_JOB, args=[job_id], queue=job.get("queue") or "interactive"
                )
            except Exception:
                # no message went out: back to processing, due now, for the next sweep
                store.transition(job_id, "processing", ("queued",), run_deadline=time.time())
                raise
            taken += 1
            telemetry.record_retry(r, "worker_lost")
            log.warning(
                "re-queued a job stuck in processing",
                extra={**fields, "attempts": job.get("attempts")},
            )
        return taken
