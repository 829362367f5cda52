"""The record store as the worker sees it: :class:`WorkerStore`, and its Redis adapter.

The worker reaches Redis only through these operations (no module in ``worker/`` holds
the client): the job and batch records of :class:`shared.store.RedisStore`, plus the
scheduler's state (shared/sweepstate.py), the fair dispatcher's (shared/fairstate.py and
shared/customline.py), telemetry, webhook event claims and secrets, and the custom model
registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import redis

from shared import telemetry
from shared.correctionstore import CorrectionRecords
from shared.customline import CustomLineState
from shared.fairstate import FairState
from shared.jobstore import JobStore
from shared.modelstore import ModelRegistry
from shared.redisops import translated
from shared.storage import Storage
from shared.store import PREFIX, RedisStore
from shared.sweepstate import SweepState
from shared.webhooks import WebhookSecrets

# what a task retries besides a transient CutoutError: redis-py's errors that reach it
# without passing through a store, from the broker's Redis under kombu's send_task
STORE_ERROR: type[Exception] = redis.RedisError


def event_key(kind: str, object_id: str, event: str) -> str:
    """Holds the ``webhook-id`` of an object's event once the event is queued."""
    return f"{PREFIX}webhook-event:{kind}:{object_id}:{event}"


class WorkerStore(JobStore, Protocol):
    """What the worker needs from the record store: :class:`JobStore` (the records) and
    the operations below. Each raises :class:`~shared.errors.Unavailable` when Redis
    fails (shared/redis_errors.py)."""

    # -- telemetry, webhooks, custom models ---------------------------------------------
    # (finished jobs are counted by the transition itself: shared/jobstats.py)
    def fold_metrics(self, fields: list[str]) -> int: ...
    def fold_stale_metrics(self) -> int: ...
    def record_retry(self, reason: str) -> None: ...
    def record_correction(self, outcome: str) -> None: ...
    def record_webhook(self, event: str, outcome: str) -> None: ...
    def heartbeat(self, worker_id: str, info: Mapping[str, Any]) -> None: ...
    def consumer_heartbeat(self, consumer_id: str) -> None: ...
    def consumer_gone(self, consumer_id: str) -> None: ...
    def claim_event(self, kind: str, object_id: str, event: str, msg_id: str) -> bool: ...
    def webhook_secret(self, tenant: str) -> str: ...
    def model_registry(self, storage: Storage) -> ModelRegistry: ...
    def correction_records(self) -> CorrectionRecords: ...

    # -- the scheduler (shared/sweepstate.py) --------------------------------------------
    def schedule(self, task: str, args: list[Any], queue: str, delay: float) -> None: ...
    def pop_due(self, limit: int = 100) -> list[str]: ...
    def put_back_due(self, raw: str, delay: float) -> None: ...
    def take_sweep_lock(self, ttl: int) -> bool: ...
    def overdue_runs(self, limit: int = 500) -> list[str]: ...
    def forget_run(self, job_id: str) -> None: ...
    def queued_before(self, before: float, limit: int) -> list[str]: ...
    def forget_queued(self, job_id: str) -> None: ...
    def relist_queued(self, job_id: str, now: float) -> None: ...
    def prune_suspects(self, before: float) -> None: ...
    def suspected_since(self, job_ids: list[str]) -> list[float | None]: ...
    def suspect(self, job_id: str, now: float) -> None: ...
    def clear_suspect(self, job_id: str) -> None: ...

    # -- the fair dispatcher (shared/fairstate.py) ---------------------------------------
    def fair_register(self, batch_id: str, tenant: str) -> bool: ...
    def fair_lock(self) -> str | None: ...
    def fair_unlock(self, token: str) -> None: ...
    def fair_tenants(self) -> list[str]: ...
    def fair_batches(self, tenant: str, limit: int = -1) -> list[str]: ...
    def fair_drop(self, tenant: str, batch_id: str) -> None: ...
    def fair_forget_tenant(self, tenant: str) -> None: ...
    def fair_mark_sent(self, batch_id: str, cursor: int, job_ids: list[str]) -> None: ...

    # -- custom-model lines (shared/customline.py) ---------------------------------------
    def custom_park(self, tenant: str, job_id: str, batch_item: bool = False) -> bool: ...
    def custom_tenants(self) -> list[str]: ...
    def custom_admit(self, tenant: str, window: int) -> list[str]: ...


class RedisWorkerStore(SweepState, FairState, CustomLineState, RedisStore):
    """:class:`WorkerStore` on Redis."""

    @classmethod
    def of(cls, store: RedisStore) -> RedisWorkerStore:
        """The worker's view of an existing store (same client and retention)."""
        if isinstance(store, RedisWorkerStore):
            return store
        return cls(store.r, store.retention)

    @translated
    def fold_metrics(self, fields: list[str]) -> int:
        """Fold these worker processes' metric totals into the shared counters."""
        return telemetry.fold(self.r, fields)

    @translated
    def fold_stale_metrics(self) -> int:
        """Fold the totals of worker processes that died without stopping."""
        return telemetry.fold_stale(self.r)

    @translated
    def record_retry(self, reason: str) -> None:
        telemetry.record_retry(self.r, reason)

    @translated
    def record_correction(self, outcome: str) -> None:
        telemetry.record_correction(self.r, outcome)

    @translated
    def record_webhook(self, event: str, outcome: str) -> None:
        telemetry.record_webhook(self.r, event, outcome)

    @translated
    def heartbeat(self, worker_id: str, info: Mapping[str, Any]) -> None:
        telemetry.heartbeat(self.r, worker_id, info)

    @translated
    def consumer_heartbeat(self, consumer_id: str) -> None:
        telemetry.consumer_heartbeat(self.r, consumer_id)

    @translated
    def consumer_gone(self, consumer_id: str) -> None:
        telemetry.consumer_gone(self.r, consumer_id)

    @translated
    def claim_event(self, kind: str, object_id: str, event: str, msg_id: str) -> bool:
        """Claim an object's event for ``msg_id``; False when it was claimed before (SET NX,
        so a second announcement of the same event queues nothing)."""
        key = event_key(kind, object_id, event)
        return bool(self.r.set(key, msg_id, nx=True, ex=self.retention))

    @translated
    def webhook_secret(self, tenant: str) -> str:
        """The tenant's signing secret, made on first use."""
        return WebhookSecrets(self.r).get_or_create(tenant)

    @translated
    def model_registry(self, storage: Storage) -> ModelRegistry:
        return ModelRegistry(self.r, storage)

    def correction_records(self) -> CorrectionRecords:
        """Corrected masks' steps on the job records (shared/correctionstore.py)."""
        return CorrectionRecords(self.r, self.retention)
