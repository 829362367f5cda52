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

Custom models get a line of their own. A job on a custom model may hold a worker for up
to ``CUTOUT_CUSTOM_MODEL_TIMEOUT`` (worker/engine/sandbox.py), and ``interactive`` and
``bulk`` are FIFO lists: a tenant's 100 slow custom-model jobs held every job behind
them. So the first time a worker takes such a job (a single job or a batch item) it does
not run it but *parks* it in its tenant's line (shared/stores/customlines.py; the job stays
``queued``), and the dispatcher *admits* at most ``CUTOUT_CUSTOM_MODEL_WINDOW`` of each
tenant's parked jobs at a time: an admitted job's message goes to the back of its own
queue, and the next is admitted once it has finished. Another tenant's job, queued behind
the parked ones, runs before their admitted copies; with one worker it waits behind at
most a window of that tenant's custom-model jobs, each at most the time cap. The bulk
window alone did not do this for batch items: it lets 200 of a tenant's items wait in
``bulk`` at once, which on a slow custom model is 200 time caps ahead of another
tenant's batch. A parked batch item still counts in its tenant's bulk window, and waits
behind its tenant's single jobs in the line (someone waits on those).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.contract.options import MODELS
from shared.contract.shapes.records import JobRecord
from shared.contract.tasks import BULK, INTERACTIVE, PROCESS_JOB
from shared.stores.fair import LOCK_KEY, TENANTS_KEY, pending, tenant_key
from shared.stores.workerstore import WorkerStore

if TYPE_CHECKING:
    from worker.context import WorkerContext

log = logging.getLogger("cutout.fair")

SCAN = 50  # batches of one tenant looked at per pass (see _top_up)
CHUNK = 500  # messages between cursor updates


def parks(job: JobRecord) -> bool:
    """Whether ``job`` goes through its tenant's custom-model line: a queued job (single
    or batch item) on a model other than the built-ins."""
    model = (job.options or {}).get("model")
    return job.status == "queued" and isinstance(model, str) and model not in MODELS


class Dispatcher:
    """Moves batch items into ``bulk``, at most a window per tenant in flight."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.store: WorkerStore = ctx.store

    @property
    def window(self) -> int:
        return int(self.ctx.settings.bulk_window)

    @property
    def custom_window(self) -> int:
        return int(self.ctx.settings.custom_model_window)

    def register(self, batch_id: str, tenant: str) -> bool:
        """Put a stored batch in line; True the first time, False when already there."""
        return self.store.fair.register(batch_id, tenant)

    def dispatch(self) -> int:
        """One pass over every tenant with work; returns the messages sent (0 if there is
        none, or another dispatcher holds the lock). Work that arrives after the check is
        found by the next pass, as when another dispatcher held the lock."""
        if not self.store.fair.has_work():
            return 0
        token = self.store.fair.lock()
        if token is None:
            return 0
        sent = 0
        try:
            for tenant in self.store.fair.tenants():
                sent += self._top_up(tenant)
            sent += self._admit_custom()
        finally:
            self.store.fair.unlock(token)
        return sent

    def park(self, job: JobRecord) -> bool:
        """Put a job that :func:`parks` in its tenant's custom-model line, and admit what
        has room at once; False when the job is admitted already (run it)."""
        tenant, batch_item = job.tenant or "", bool(job.batch_id)
        if not self.store.custom_lines.park(tenant, job.id, batch_item):
            return False
        token = self.store.fair.lock()
        if token is not None:  # else the dispatcher running now (or within 0.5 s) admits it
            try:
                self._admit_custom()
            finally:
                self.store.fair.unlock(token)
        return True

    def _admit_custom(self) -> int:
        """Admit each tenant's parked custom-model jobs up to the window; messages sent."""
        sent = 0
        for tenant in self.store.custom_lines.tenants():
            # state first (admitted, in the queued index), then the message, to the job's
            # own queue (a batch item back to bulk)
            admitted = self.store.custom_lines.admit(tenant, self.custom_window)
            for job_id, job in zip(admitted, self.store.get_jobs(admitted), strict=True):
                queue = (job.queue if job is not None else None) or INTERACTIVE
                self.ctx.app.send_task(PROCESS_JOB, args=[job_id], queue=queue)
                sent += 1
        return sent

    def _top_up(self, tenant: str) -> int:
        store = self.store
        batch_ids = store.fair.batches(tenant, SCAN)
        if not batch_ids:
            store.fair.forget_tenant(tenant)
            return 0
        # Only the first SCAN batches are looked at. Batches are sent oldest first, so
        # every batch with items in flight comes before the first with items unsent; if
        # all SCAN are sent and still draining, none further back is sent this pass.
        in_flight = 0
        waiting: list[tuple[str, int, int]] = []  # (batch id, cursor, total)
        for batch_id in batch_ids:
            batch = store.get_batch(batch_id)
            if batch is None:  # expired (retention) or never stored
                store.fair.drop(tenant, batch_id)
                continue
            counts = batch.counts or {}
            total = int(counts["total"])
            cursor = min(total, batch.enqueued or 0)
            finished = counts["succeeded"] + counts["failed"] + counts["canceled"]
            if cursor >= total and finished >= total:
                store.fair.drop(tenant, batch_id)  # every item sent and finished
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
        store = self.store
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
        self.store.fair.mark_sent(batch_id, cursor, job_ids)


__all__ = ["LOCK_KEY", "TENANTS_KEY", "Dispatcher", "pending", "tenant_key"]
