"""The record store as the worker sees it: :class:`WorkerStore`, and its Redis adapter.

The worker reaches Redis only through these operations (no module in ``worker/`` holds
the client): the job and batch records of :class:`shared.stores.jobs.RedisStore`, telemetry,
webhook event claims and secrets, the custom model registry, and, as parts of the store
rather than mixins of it, the scheduler's state (``store.sweeps``, shared/stores/sweeps.py)
and the fair dispatcher's (``store.fair``, shared/stores/fair.py, and
``store.custom_lines``, shared/stores/customlines.py).

Used by the worker only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import redis

from shared.s3.storage import Storage
from shared.stores import telemetry
from shared.stores.corrections import CorrectionRecords
from shared.stores.customlines import CustomLineState
from shared.stores.fair import FairState
from shared.stores.jobs import PREFIX, RedisStore
from shared.stores.jobstore import JobStore
from shared.stores.models import ModelRegistry
from shared.stores.redisops import translated
from shared.stores.sweeps import SweepState
from shared.stores.webhooksecrets import WebhookSecrets

# what a task retries besides a transient CutoutError: redis-py's errors that reach it
# without passing through a store, from the broker's Redis under kombu's send_task
STORE_ERROR: type[Exception] = redis.RedisError


def event_key(kind: str, object_id: str, event: str) -> str:
    """Holds the ``webhook-id`` of an object's event once the event is queued."""
    return f"{PREFIX}webhook-event:{kind}:{object_id}:{event}"


class WorkerStore(JobStore, Protocol):
    """What the worker needs from the record store: :class:`JobStore` (the records), the
    operations below, and three parts, each the state of one piece of the worker's
    machinery: ``sweeps`` (the scheduler and the reconciler, shared/stores/sweeps.py),
    ``fair`` (the fair dispatcher, shared/stores/fair.py) and ``custom_lines`` (the line of
    custom-model jobs, shared/stores/customlines.py). Each operation raises
    :class:`~shared.errors.Unavailable` when Redis fails (shared/redis/errors.py)."""

    sweeps: SweepState
    fair: FairState
    custom_lines: CustomLineState

    # -- telemetry, webhooks, custom models ---------------------------------------------
    # (finished jobs are counted by the transition itself: shared/stores/jobstats.py)
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


class RedisWorkerStore(RedisStore):
    """:class:`WorkerStore` on Redis: the job store and its three parts on one client."""

    def __init__(self, client: redis.Redis, retention: int) -> None:
        super().__init__(client, retention)
        self.sweeps = SweepState(client)
        self.fair = FairState(client)
        self.custom_lines = CustomLineState(client)

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
        """Corrected masks' steps on the job records (shared/stores/corrections.py)."""
        return CorrectionRecords(self.r, self.retention)
