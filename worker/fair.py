"""Fair sharing of the ``bulk`` queue between tenants.

``bulk`` is one FIFO list: a batch whose 10,000 messages were all pushed at once held
every batch that came after it, of any tenant, until it drained. So batch items are not
pushed at once. A stored batch is *registered*: its id joins its tenant's list of
batches (``cutout:fair:tenant:<tenant>``, arrival order) and the tenant joins the set of
tenants with work (``cutout:fair:tenants``). A dispatcher then keeps at most
``CUTOUT_BULK_WINDOW`` of each tenant's items in flight (sent and not yet finished),
topping every tenant up in turn, oldest batch first. With two tenants busy, ``bulk``
holds at most a window of each, interleaved in arrival order: each gets about half of
the workers, and a 10-item batch waits behind at most one window of the other tenant's
items, not behind its whole batch.

The dispatcher runs in every worker's scheduler thread (worker/scheduler.py), about
twice a second, and once at once when a batch registers (``cutout.enqueue_batch``); a
Redis lock lets one run at a time across the fleet. What it needs is already in the
batch records: the cursor ``enqueued`` (items sent, in item order) and the counters
(items finished), so in flight = ``enqueued - finished``. Items cancelled before they
were sent count as finished, so a tenant may briefly have that many more in flight.

State first, then the message (as everywhere): the cursor moves past a chunk, and its
jobs join the queued index (``cutout:queued``), in one step before their messages are
sent. So a message lost afterwards (a dispatcher killed in the middle, a Redis crash that
loses its last writes, a broker lost on its own) leaves a job that is ``queued``, listed
since its dispatch, and absent from the broker: the reconciler (worker/reconcile.py)
re-sends it. (Sending first would lose nothing either on one Redis, but with a separate
broker a message could then vanish with nothing left that says it was sent.)
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from shared.store import PREFIX, QUEUED_KEY, batch_key
from shared.tasks import BULK, PROCESS_JOB

log = logging.getLogger("cutout.fair")

TENANTS_KEY = f"{PREFIX}fair:tenants"
LOCK_KEY = f"{PREFIX}fair:lock"
LOCK_TTL = 30  # seconds; far above one pass
SCAN = 50  # batches of one tenant looked at per pass (see _top_up)
CHUNK = 500  # messages between cursor updates


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


class Dispatcher:
    """Moves batch items into ``bulk``, at most a window per tenant in flight."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        r = ctx.store.r
        self._register = r.register_script(_REGISTER)
        self._forget = r.register_script(_FORGET_TENANT)
        self._unlock = r.register_script(_UNLOCK)

    @property
    def window(self) -> int:
        return int(self.ctx.settings.bulk_window)

    def register(self, batch_id: str, tenant: str) -> bool:
        """Put a stored batch in line; True the first time, False when already there."""
        keys = [batch_key(batch_id), tenant_key(tenant), TENANTS_KEY]
        return bool(self._register(keys=keys, args=[batch_id, tenant]))

    def dispatch(self) -> int:
        """One pass over every tenant with work; returns the messages sent (0 if another
        dispatcher holds the lock)."""
        r = self.ctx.store.r
        token = secrets.token_hex(8)
        if not r.set(LOCK_KEY, token, nx=True, ex=LOCK_TTL):
            return 0
        sent = 0
        try:
            for tenant in sorted(r.smembers(TENANTS_KEY)):
                sent += self._top_up(tenant)
        finally:
            self._unlock(keys=[LOCK_KEY], args=[token])
        return sent

    def _top_up(self, tenant: str) -> int:
        store = self.ctx.store
        r = store.r
        key = tenant_key(tenant)
        batch_ids = r.lrange(key, 0, SCAN - 1)
        if not batch_ids:
            self._forget(keys=[key, TENANTS_KEY], args=[tenant])
            return 0
        # Only the first SCAN batches are looked at. Batches are sent oldest first, so
        # every batch with items in flight comes before the first with items unsent; if
        # all SCAN are sent and still draining, none further back is sent this pass.
        in_flight = 0
        waiting: list[tuple[str, int, int]] = []  # (batch id, cursor, total)
        for batch_id in batch_ids:
            batch = store.get_batch(batch_id)
            if batch is None:  # expired (retention) or never stored
                r.lrem(key, 1, batch_id)
                continue
            counts = batch["counts"]
            total = int(counts["total"])
            cursor = min(total, int(batch.get("enqueued") or 0))
            finished = counts["succeeded"] + counts["failed"] + counts["canceled"]
            if cursor >= total and finished >= total:
                r.lrem(key, 1, batch_id)  # every item sent and finished
                continue
            in_flight += max(0, cursor - finished)
            if cursor < total:
                waiting.append((batch_id, cursor, total))
        room = self.window - in_flight
        sent = 0
        for batch_id, cursor, total in waiting:
            if room <= 0:
                break
            count = min(room, total - cursor)
            done = self._send(batch_id, cursor, count)
            sent += done
            room -= done
        return sent

    def _send(self, batch_id: str, cursor: int, count: int) -> int:
        """Send items ``cursor`` … ``cursor + count - 1`` of the batch, then move its cursor."""
        store = self.ctx.store
        sent = 0
        while sent < count:
            step = min(CHUNK, count - sent)
            ids = store.batch_job_ids(batch_id, cursor + sent, cursor + sent + step - 1)
            if not ids:
                break
            self.mark_sent(batch_id, cursor + sent + len(ids), ids)
            for job_id in ids:
                self.ctx.app.send_task(PROCESS_JOB, args=[job_id], queue=BULK)
            sent += len(ids)
        if sent:
            log.debug(
                "batch items sent to bulk",
                extra={"batch_id": batch_id, "sent": sent, "enqueued": cursor + sent},
            )
        return sent

    def mark_sent(self, batch_id: str, cursor: int, job_ids: list[str]) -> None:
        """Move the batch's cursor to ``cursor`` and list ``job_ids`` in the queued index,
        in one step, before their messages go out."""
        now = time.time()
        pipe = self.ctx.store.r.pipeline(transaction=True)
        pipe.hset(batch_key(batch_id), "enqueued", cursor)
        pipe.zadd(QUEUED_KEY, dict.fromkeys(job_ids, now))
        pipe.execute()


def pending(store: Any) -> int:
    """Batch items registered and not yet sent to ``bulk`` (for tests and benchmarks)."""
    r = store.r
    left = 0
    for tenant in r.smembers(TENANTS_KEY):
        for batch_id in r.lrange(tenant_key(tenant), 0, -1):
            batch = store.get_batch(batch_id)
            if batch is not None:
                left += max(0, int(batch["counts"]["total"]) - int(batch.get("enqueued") or 0))
    return left


__all__ = ["Dispatcher", "pending", "tenant_key"]
