"""Job and batch records in Redis: the single source of truth the API answers from.

A job is a Redis hash ``cutout:job:<id>``; JSON-valued members (options, result, error,
metadata, webhook, source) are stored as JSON strings. The record shapes, their codec
and their public JSON live in ``shared.contract.shapes``; this module is the Redis side only.
State changes go through one Lua script, so they are atomic and never go backwards:

    queued ──► processing ──► succeeded | failed
      │  ▲         │
      │  └─────────┘ (redelivery after a crash, or a retry of a transient error)
      └──► canceled

The same script moves the job's batch counters, and marks the batch completed exactly
once, when the last item reaches a terminal state. Every key carries the retention TTL.
Used by the API and the worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import redis

from shared.contract.shapes.records import TERMINAL, BatchRecord, Counts, JobRecord, Stored
from shared.contract.shapes.records import encode as _encode
from shared.redis.errors import connect
from shared.redis.errors import redis_errors as _translated  # the one translation
from shared.s3.keys import is_upload
from shared.stores.jobscripts import RESERVE, TAKE_DUE, TRANSITION, UPDATE_EXISTING, Transition
from shared.stores.jobscripts import script_args as _script_args

PREFIX = "cutout:"
# job id → deadline of its current run, for every job in `processing`
PROCESSING_KEY = f"{PREFIX}processing"
# job id → when it became queued with a message expected in the broker: single jobs from
# their creation, batch items from their dispatch (worker/fair.py), re-queued jobs from
# the re-queue. The reconciler (worker/reconcile.py) re-sends a job found here long after
# whose message the broker does not hold (a Redis crash lost it).
QUEUED_KEY = f"{PREFIX}queued"
# objects to delete when their job expires: {tenant, job (null: upload slot), input} → time
EXPIRY_KEY = f"{PREFIX}expiry"
# worker process id → that process's finished-job metrics (shared/stores/jobstats.py)
PROCS_KEY = f"{PREFIX}stats:procs"


def upload_member(tenant: str | None, key: str) -> str:
    """The expiry entry of an upload slot (one per key: re-adding it moves its date)."""
    return json.dumps({"tenant": tenant, "job": None, "input": key}, separators=(",", ":"))


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def batch_key(batch_id: str) -> str:
    return f"{PREFIX}batch:{batch_id}"


def batch_counts_key(batch_id: str) -> str:
    return f"{PREFIX}batch:{batch_id}:counts"


def batch_scores_key(batch_id: str) -> str:
    """The batch's succeeded jobs by quality score (a sorted set, worst first)."""
    return f"{PREFIX}batch:{batch_id}:scores"


def batch_jobs_key(batch_id: str) -> str:
    return f"{PREFIX}batch:{batch_id}:jobs"


def done_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:done"


def tenant_active_key(tenant: str) -> str:
    """The set of the tenant's reserved, not yet finished job ids (the queue cap)."""
    return f"{PREFIX}tenant:{tenant}:active"


def _members(record: Stored | Mapping[str, Any]) -> Mapping[str, Any]:
    """A record's members to write (a typed record's set ones; a mapping as it is)."""
    return record.stored() if isinstance(record, Stored) else record


class RedisStore:
    """:class:`~shared.stores.jobstore.JobStore` on Redis. Redis errors surface as
    :class:`Unavailable`."""

    def __init__(self, client: redis.Redis, retention: int) -> None:
        # decode_responses=True clients; typed loosely since redis-py's stubs assume bytes
        self.r: Any = client
        self.retention = retention
        self._transition = client.register_script(TRANSITION)
        self._reserve = client.register_script(RESERVE)
        self._update = client.register_script(UPDATE_EXISTING)
        self._take_due = client.register_script(TAKE_DUE)

    @classmethod
    def from_url(cls, url: str, retention: int) -> RedisStore:
        return cls(connect(url, health_check_interval=30), retention)

    # -- jobs ---------------------------------------------------------------------------

    def create_job(self, job: JobRecord | Mapping[str, Any]) -> None:
        """Store a new job with the retention TTL (a queued one joins the queued index)."""
        job = _members(job)
        with _translated():
            pipe = self.r.pipeline()
            self._add_job(pipe, job)
            if job.get("status") == "queued":
                pipe.zadd(QUEUED_KEY, {job["id"]: time.time()})
            pipe.execute()

    def _add_job(self, pipe: Any, job: Mapping[str, Any]) -> None:
        pipe.hset(job_key(job["id"]), mapping=_encode(job))
        pipe.expire(job_key(job["id"]), self.retention)
        # the record expires by TTL; its stored bytes are deleted by the sweeper then
        member = json.dumps(
            {"tenant": job.get("tenant"), "job": job["id"], "input": job.get("input_key")},
            separators=(",", ":"),
        )
        pipe.zadd(EXPIRY_KEY, {member: time.time() + self.retention})
        key = job.get("input_key") or ""
        if is_upload(key):
            # a direct upload a job uses lives as long as the job (not its slot's date)
            pipe.zadd(
                EXPIRY_KEY, {upload_member(job.get("tenant"), key): time.time() + self.retention}
            )

    def expire_uploads(self, tenant: str, keys: list[str]) -> None:
        """List upload slots for deletion after the retention (an unused upload must not
        stay forever); a job using one moves that to the job's own expiry."""
        if not keys:
            return
        deadline = time.time() + self.retention
        with _translated():
            self.r.zadd(EXPIRY_KEY, {upload_member(tenant, key): deadline for key in keys})

    def get_job(self, job_id: str, tenant: str | None = None) -> JobRecord | None:
        """The job, or None when it does not exist or belongs to another tenant."""
        with _translated():
            raw = self.r.hgetall(job_key(job_id))
        if not raw:
            return None
        job = JobRecord.from_hash(raw)
        if tenant is not None and job.tenant != tenant:
            return None
        return job

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set fields outside the state machine (webhook delivery) while the job exists."""
        flat = [item for pair in _encode(fields).items() for item in pair]
        if flat:
            with _translated():
                self._update(keys=[job_key(job_id)], args=flat)

    def transition(
        self,
        job_id: str,
        new: str,
        allowed: Iterable[str],
        *,
        run_deadline: float | None = None,
        record: JobRecord | Mapping[str, Any] | None = None,
        stats: tuple[str, int, str, str] | None = None,
        **fields: Any,
    ) -> Transition:
        """Move a job to ``new`` if its status is one of ``allowed``; set ``fields`` with it.

        ``attempts="+1"`` increments the attempt counter (``"-1"``: a run handed back).
        The job's batch counters move in the same atomic step; ``batch_completed`` is true
        for exactly one caller per batch.
        Entering ``processing``, ``run_deadline`` (epoch seconds, default one hour ahead)
        says when the run is surely dead if the job is still processing.
        ``record``: the job as read before (``batch_id``, ``tenant``: they never change),
        saving a round trip. ``stats``: a worker process's metrics (shared/stores/jobstats.py
        ``job``).
        """
        with _translated():
            if record is None:
                batch_id, tenant = self.r.hmget(job_key(job_id), ["batch_id", "tenant"])
            elif isinstance(record, JobRecord):
                batch_id, tenant = record.batch_id, record.tenant
            else:
                batch_id, tenant = record.get("batch_id"), record.get("tenant")
            batch_id = batch_id or ""
            deadline = run_deadline if run_deadline is not None else time.time() + 3600
            args = _script_args(new, allowed, deadline, fields)
            if stats is not None:
                proc, seq, totals, delta = stats
                args += ["_proc", proc, "_seq", seq, "_stats", totals, "_delta", delta]
            keys = [
                job_key(job_id),
                batch_counts_key(batch_id) if batch_id else "",
                batch_key(batch_id) if batch_id else "",
                done_key(job_id),
                PROCESSING_KEY,
                tenant_active_key(tenant) if tenant else "",
                QUEUED_KEY,
                batch_scores_key(batch_id) if batch_id else "",
                PROCS_KEY,
            ]
            reply = self._transition(keys=keys, args=args)
        stored = reply[4] if len(reply) > 4 else None
        return Transition(reply[0] == 1, reply[1] or None, bool(reply[2]), stats=stored)

    def claim(
        self, job_id: str, models: Iterable[str], *, run_deadline: float, **fields: Any
    ) -> Transition:
        """Read the job and, in one step, move it to ``processing`` (one more attempt) if
        ``queued``, not a batch item, on one of ``models``; ``before``: the record read
        (None: no such job). Else the caller decides from it and calls :meth:`transition`."""
        args = _script_args("processing", ["queued"], run_deadline, {**fields, "attempts": "+1"})
        keys = [job_key(job_id), "", "", done_key(job_id), PROCESSING_KEY, "", QUEUED_KEY, ""]
        with _translated():
            reply = self._transition(
                keys=[*keys, PROCS_KEY], args=[*args, "_claim", ",".join(models)]
            )
        raw = reply[3] if len(reply) > 3 else []
        before = JobRecord.from_hash(dict(zip(raw[::2], raw[1::2], strict=True))) if raw else None
        return Transition(reply[0] == 1, reply[1] or None, False, before)

    def wait_finished(self, job_id: str, timeout: float) -> bool:
        """Block until the job reaches a terminal state or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job is None:
                return False
            if job.status in TERMINAL:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # BLPOP in slices shorter than the client's socket timeout (10 s)
            with _translated():
                got = self.r.blpop([done_key(job_id)], timeout=min(5.0, max(0.01, left)))
                if got:
                    # leave the marker for other waiters on the same job
                    self.r.rpush(done_key(job_id), got[1])
                    self.r.expire(done_key(job_id), 300)
                    return True

    def delete_job(self, job_id: str) -> None:
        with _translated():
            self.r.delete(job_key(job_id), done_key(job_id))

    # -- batches ------------------------------------------------------------------------

    def create_batch(self, batch: BatchRecord | Mapping[str, Any], total: int) -> None:
        batch = _members(batch)
        with _translated():
            pipe = self.r.pipeline()
            pipe.hset(batch_key(batch["id"]), mapping=_encode(batch))
            pipe.hset(
                batch_counts_key(batch["id"]),
                mapping={
                    "total": total,
                    "queued": 0,
                    "processing": 0,
                    "succeeded": 0,
                    "failed": 0,
                    "canceled": 0,
                    "_done": 0,
                },
            )
            for key in (batch_key(batch["id"]), batch_counts_key(batch["id"])):
                pipe.expire(key, self.retention)
            pipe.execute()

    def add_batch_jobs(self, batch_id: str, jobs: Sequence[JobRecord | Mapping[str, Any]]) -> None:
        """Store a chunk of the batch's jobs (status ``queued``) and count them queued."""
        with _translated():
            pipe = self.r.pipeline()
            records = [_members(job) for job in jobs]
            for record in records:
                self._add_job(pipe, record)
            pipe.rpush(batch_jobs_key(batch_id), *[record["id"] for record in records])
            pipe.expire(batch_jobs_key(batch_id), self.retention)
            pipe.hincrby(batch_counts_key(batch_id), "queued", len(jobs))
            pipe.execute()

    def get_batch(self, batch_id: str, tenant: str | None = None) -> BatchRecord | None:
        """The batch with its ``counts``, or None (no such batch, or another tenant's)."""
        with _translated():
            pipe = self.r.pipeline()
            pipe.hgetall(batch_key(batch_id))
            pipe.hgetall(batch_counts_key(batch_id))
            raw, counts = pipe.execute()
        if not raw:
            return None
        batch = BatchRecord.from_hash(raw)
        if tenant is not None and batch.tenant != tenant:
            return None
        batch.counts = {name: int(counts.get(name, 0)) for name in Counts.model_fields}
        return batch

    def update_batch(self, batch_id: str, **fields: Any) -> None:
        with _translated():
            if self.r.exists(batch_key(batch_id)):
                self.r.hset(batch_key(batch_id), mapping=_encode(fields))

    def batch_scored_ids(self, batch_id: str, start: int = 0, stop: int = -1) -> list[str]:
        """The batch's succeeded jobs that have a quality score, worst first (ties by id)."""
        with _translated():
            return list(self.r.zrange(batch_scores_key(batch_id), start, stop))

    def batch_score_rank(self, batch_id: str, job_id: str) -> int | None:
        """``job_id``'s place in :meth:`batch_scored_ids` (0: the worst); None when it is
        not there. A job's score never changes, so its place only moves back as worse
        ones (lower scores) enter ahead of it: a cursor that names the job resumes exactly."""
        with _translated():
            rank = self.r.zrank(batch_scores_key(batch_id), job_id)
        return None if rank is None else int(rank)

    def batch_job_ids(self, batch_id: str, start: int = 0, stop: int = -1) -> list[str]:
        with _translated():
            return list(self.r.lrange(batch_jobs_key(batch_id), start, stop))

    def get_jobs(self, job_ids: list[str]) -> list[JobRecord | None]:
        """Several jobs in one round trip, in the order asked (None where one is gone)."""
        if not job_ids:
            return []
        with _translated():
            pipe = self.r.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hgetall(job_key(job_id))
            rows = pipe.execute()
        return [JobRecord.from_hash(raw) if raw else None for raw in rows]

    def iter_batch_jobs(self, batch_id: str, chunk: int = 500) -> Iterator[JobRecord]:
        """Every job of the batch in item order, read in chunks (for zips and listings)."""
        start = 0
        while True:
            ids = self.batch_job_ids(batch_id, start, start + chunk - 1)
            if not ids:
                return
            with _translated():
                pipe = self.r.pipeline(transaction=False)
                for job_id in ids:
                    pipe.hgetall(job_key(job_id))
                rows = pipe.execute()
            for raw in rows:
                if raw:
                    yield JobRecord.from_hash(raw)
            start += chunk

    # -- per-tenant queue cap -------------------------------------------------------------

    def reserve_active(self, tenant: str, job_ids: list[str], cap: int) -> tuple[bool, int]:
        """Count ``job_ids`` among the tenant's active (queued or processing) jobs.

        All or nothing: returns (False, current size) when the tenant would pass ``cap``.
        Each id leaves the set when its job reaches a terminal state (``transition``), or
        by :meth:`release_active` when the job is never created.
        """
        if not job_ids:
            return True, self.active_count(tenant)
        with _translated():
            ok, size = self._reserve(
                keys=[tenant_active_key(tenant)], args=[cap, self.retention, *job_ids]
            )
        return bool(ok), int(size)

    def release_active(self, tenant: str, job_ids: list[str]) -> None:
        """Give back reservations of jobs that were never created (intake failed)."""
        if job_ids:
            with _translated():
                self.r.srem(tenant_active_key(tenant), *job_ids)

    def active_count(self, tenant: str) -> int:
        with _translated():
            return int(self.r.scard(tenant_active_key(tenant)))

    def pop_expired(self, limit: int = 200) -> list[dict[str, Any]]:
        """Take up to ``limit`` expired jobs' storage entries (each returned to one caller)."""
        with _translated():
            members = self._take_due(keys=[EXPIRY_KEY], args=[time.time(), limit])
        return [json.loads(member) for member in members]

    # -- misc ---------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.RedisError:
            return False
