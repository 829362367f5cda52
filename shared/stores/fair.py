"""The fair dispatcher's state in Redis (worker/fair.py says how it is used).

A registered batch's id is in its tenant's list (``cutout:fair:tenant:<tenant>``, arrival
order) and the tenant in the set of tenants with work (``cutout:fair:tenants``); one
dispatcher at a time holds ``cutout:fair:lock``. A mixin of
:class:`shared.stores.workerstore.RedisWorkerStore`: it needs the store's client ``r``.

Used by the worker only.
"""

from __future__ import annotations

import time

from shared.ids import new_token
from shared.stores.customlines import CUSTOM_TENANTS_KEY
from shared.stores.jobs import PREFIX, QUEUED_KEY, RedisStore, batch_key
from shared.stores.redisops import RedisOps, translated

TENANTS_KEY = f"{PREFIX}fair:tenants"
LOCK_KEY = f"{PREFIX}fair:lock"
LOCK_TTL = 30  # seconds; far above one pass


def tenant_key(tenant: str) -> str:
    return f"{PREFIX}fair:tenant:{tenant}"


# KEYS: batch, tenant's batch list, tenants set. ARGV: batch id, tenant.
# Registers a batch once (a redelivered enqueue task registers nothing new).
_REGISTER = """
if redis.call('HSETNX', KEYS[1], 'fair', '1') == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""

# KEYS: tenant's batch list, tenants set. ARGV: tenant. A tenant leaves the set only
# when its list is empty, in one step, so a batch registering meanwhile is never missed.
_FORGET_TENANT = """
if redis.call('LLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class FairState(RedisOps):
    """Operations of the fair dispatcher on the store's Redis."""

    @translated
    def register(self, batch_id: str, tenant: str) -> bool:
        """Put a stored batch in its tenant's line; False when it already was."""
        keys = [batch_key(batch_id), tenant_key(tenant), TENANTS_KEY]
        return bool(self._script(_REGISTER)(keys=keys, args=[batch_id, tenant]))

    @translated
    def has_work(self) -> bool:
        """Whether any tenant has batches in line or parked custom-model jobs: one EXISTS,
        so an idle dispatcher pass is one round trip (a lock, two reads and an unlock
        were five, from every pool child twice a second)."""
        return bool(self.r.exists(TENANTS_KEY, CUSTOM_TENANTS_KEY))

    @translated
    def lock(self) -> str | None:
        """Take the dispatcher lock; its token, or None when another dispatcher holds it."""
        token = new_token()
        return token if self.r.set(LOCK_KEY, token, nx=True, ex=LOCK_TTL) else None

    @translated
    def unlock(self, token: str) -> None:
        self._script(_UNLOCK)(keys=[LOCK_KEY], args=[token])

    @translated
    def tenants(self) -> list[str]:
        """The tenants with registered batches, sorted."""
        return sorted(self.r.smembers(TENANTS_KEY))

    @translated
    def batches(self, tenant: str, limit: int = -1) -> list[str]:
        """The tenant's registered batch ids, oldest first (the first ``limit``)."""
        return list(self.r.lrange(tenant_key(tenant), 0, limit - 1 if limit > 0 else -1))

    @translated
    def drop(self, tenant: str, batch_id: str) -> None:
        """Take a batch out of its tenant's line (sent and finished, or expired)."""
        self.r.lrem(tenant_key(tenant), 1, batch_id)

    @translated
    def forget_tenant(self, tenant: str) -> None:
        """Take the tenant out of the set of tenants with work if its line is empty."""
        self._script(_FORGET_TENANT)(keys=[tenant_key(tenant), TENANTS_KEY], args=[tenant])

    @translated
    def mark_sent(self, batch_id: str, cursor: int, job_ids: list[str]) -> None:
        """Move the batch's cursor to ``cursor`` and list ``job_ids`` in the queued index,
        in one step, before their messages go out."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(batch_key(batch_id), "enqueued", cursor)
        pipe.zadd(QUEUED_KEY, dict.fromkeys(job_ids, time.time()))
        pipe.execute()


def pending(store: RedisStore) -> int:
    """Batch items registered and not yet sent to ``bulk`` (for tests and benchmarks)."""
    r = store.r
    left = 0
    for tenant in r.smembers(TENANTS_KEY):
        for batch_id in r.lrange(tenant_key(tenant), 0, -1):
            batch = store.get_batch(batch_id)
            if batch is not None:
                total = (batch.counts or {}).get("total", 0)
                left += max(0, total - (batch.enqueued or 0))
    return left
