"""The scheduler's state in Redis (worker/scheduler.py and worker/reconcile.py say how it
is used): the durable delay set, the sweep lock, and the indexes the sweeps read.

- ``cutout:due``: delayed tasks, JSON {task, args, queue, at}, scored by due time;
- ``cutout:sweep-lock``: one sweeper at a time across all workers;
- ``cutout:processing`` (shared/stores/jobs.py): job id → deadline of its current run;
- ``cutout:queued`` (shared/stores/jobs.py): job id → since when it waits for its message;
- ``cutout:reconcile:suspects``: job id → when a scan first missed its message.

The worker store's part ``sweeps`` (:class:`shared.stores.workerstore.RedisWorkerStore`).

Used by the worker only.
"""

from __future__ import annotations

import json
import time
from typing import Any

from shared.stores.jobs import EXPIRY_KEY, PREFIX, PROCESSING_KEY, QUEUED_KEY
from shared.stores.redisops import RedisOps, translated

DUE_KEY = f"{PREFIX}due"
SWEEP_LOCK = f"{PREFIX}sweep-lock"
SUSPECTS_KEY = f"{PREFIX}reconcile:suspects"

# pop up to ARGV[2] members due at or before ARGV[1]
_POP_DUE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #items > 0 then redis.call('ZREM', KEYS[1], unpack(items)) end
return items
"""


class SweepState(RedisOps):
    """Operations of the scheduler thread and the reconciler on the store's Redis."""

    # -- the delay set ------------------------------------------------------------------

    @translated
    def schedule(self, task: str, args: list[Any], queue: str, delay: float) -> None:
        """Send ``task`` with ``args`` to ``queue`` after ``delay`` seconds (durably)."""
        member = json.dumps({"task": task, "args": args, "queue": queue, "at": time.time()})
        self.r.zadd(DUE_KEY, {member: time.time() + delay})

    @translated
    def pop_due(self, limit: int = 100) -> list[str]:
        """Take the entries due now (each returned to one caller), as stored."""
        return list(self._script(_POP_DUE)(keys=[DUE_KEY], args=[time.time(), limit]))

    @translated
    def put_back_due(self, raw: str, delay: float) -> None:
        """Return a taken entry to the delay set, due in ``delay`` seconds."""
        self.r.zadd(DUE_KEY, {raw: time.time() + delay})

    @translated
    def put_back_expired(self, entries: list[dict[str, Any]], delay: float) -> None:
        """Return taken retention entries (``pop_expired``) whose objects were not deleted,
        due again in ``delay`` seconds: storage being down must not forget them."""
        if entries:
            due = time.time() + delay
            self.r.zadd(EXPIRY_KEY, {json.dumps(e, separators=(",", ":")): due for e in entries})

    # -- sweeps -------------------------------------------------------------------------

    @translated
    def take_sweep_lock(self, ttl: int) -> bool:
        """True for one caller across all workers for ``ttl`` seconds."""
        return bool(self.r.set(SWEEP_LOCK, "1", nx=True, ex=ttl))

    @translated
    def overdue_runs(self, limit: int = 500) -> list[str]:
        """Jobs in ``processing`` whose run's deadline has passed (surely dead runs)."""
        return list(self.r.zrangebyscore(PROCESSING_KEY, "-inf", time.time(), start=0, num=limit))

    @translated
    def forget_run(self, job_id: str) -> None:
        """Take a job that is no longer processing out of the processing index."""
        self.r.zrem(PROCESSING_KEY, job_id)

    # -- the queued index and the reconciler's suspects ---------------------------------

    @translated
    def queued_before(self, before: float, limit: int) -> list[str]:
        """Jobs listed in the queued index since before ``before`` (epoch seconds)."""
        return list(self.r.zrangebyscore(QUEUED_KEY, "-inf", before, start=0, num=limit))

    @translated
    def forget_queued(self, job_id: str) -> None:
        """Take a job that is no longer queued out of the index and the suspects."""
        self.r.zrem(QUEUED_KEY, job_id)
        self.r.zrem(SUSPECTS_KEY, job_id)

    @translated
    def relist_queued(self, job_id: str, now: float) -> None:
        """List a queued job from ``now`` on (if it is still listed)."""
        self.r.zadd(QUEUED_KEY, {job_id: now}, xx=True)

    @translated
    def prune_suspects(self, before: float) -> None:
        """Forget suspicions first raised before ``before``."""
        self.r.zremrangebyscore(SUSPECTS_KEY, "-inf", before)

    @translated
    def suspected_since(self, job_ids: list[str]) -> list[float | None]:
        """When a scan first missed each job's message (None: never, or cleared)."""
        return list(self.r.zmscore(SUSPECTS_KEY, job_ids))

    @translated
    def suspect(self, job_id: str, now: float) -> None:
        self.r.zadd(SUSPECTS_KEY, {job_id: now})

    @translated
    def clear_suspect(self, job_id: str) -> None:
        self.r.zrem(SUSPECTS_KEY, job_id)
