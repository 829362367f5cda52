"""Re-send jobs whose message the broker lost.

Redis with ``appendfsync everysec`` that dies with its machine (power loss, a kernel
crash; a SIGKILL of the process alone loses nothing already written, since that sits in
the page cache) may come back without its last second of writes; a separate broker
(``CUTOUT_BROKER_URL``) may come back without any of its messages. State is always
written before the message it causes, so what can be left is a job ``queued`` in its
record with no message anywhere: nothing would ever run it.

Every job that is ``queued`` with a message expected is listed in the queued index
(``cutout:queued``, job id → since when; shared/stores/jobs.py keeps it with the record). Each
sweep (worker/scheduler.py, one sweeper at a time) looks at the jobs listed for longer
than ``CUTOUT_RECONCILE_AFTER`` (at most :data:`CANDIDATES` per pass) and asks the broker
whether their message is there: in their queue's lists, or in kombu's ``unacked`` hash
(taken by a worker and not yet acknowledged, including retries waiting for their
countdown). Only a job whose message is absent in two scans a sweep apart, and still
``queued``, is re-sent; a job whose message is there is listed again from now. A
message is in neither place only for the moment between a worker's ``BRPOP`` and its
``unacked`` write, far shorter than a sweep, so a waiting batch of 10,000 items is never
re-sent wholesale because it waits. If a duplicate still happens it is harmless: a
task does nothing for a job that has finished, and a job reaches a terminal state once.

Cost: nothing while no job has waited that long. Otherwise one pass reads the candidate
records and every message in the lists of the candidates' queues plus ``unacked`` (the
``bulk`` list holds at most a window per tenant, worker/fair.py); if those hold more than
:data:`SCAN_MAX` messages the pass proves nothing and re-sends nothing (logged), since
absence cannot be shown without reading them all.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from shared.contract.shapes.records import JobRecord
from shared.contract.tasks import INTERACTIVE, PROCESS_JOB
from shared.stores.brokerscan import SCAN_MAX, BrokerScan, job_of, queue_lists
from shared.stores.sweeps import SUSPECTS_KEY
from shared.stores.workerstore import WorkerStore

if TYPE_CHECKING:
    from worker.context import WorkerContext

log = logging.getLogger("cutout.scheduler")

CANDIDATES = 1000  # jobs looked at per pass


class Reconciler:
    """Finds queued jobs whose message is gone, and sends it again."""

    def __init__(self, ctx: WorkerContext, confirm_after: float = 5.0) -> None:
        self.ctx = ctx
        self.store: WorkerStore = ctx.store
        self.confirm_after = confirm_after
        settings = ctx.settings
        self.broker = BrokerScan.for_broker(settings.broker_url, settings.redis_url, ctx.store)

    def reconcile(self, now: float | None = None) -> int:
        """One pass; returns the jobs re-sent."""
        now = time.time() if now is None else now
        store = self.store
        bound = self.ctx.settings.reconcile_after
        ids = store.sweeps.queued_before(now - bound, CANDIDATES)
        # forget suspicions nobody confirmed for a long time (their jobs moved on)
        store.sweeps.prune_suspects(now - 10 * bound - 60)
        if not ids:
            return 0
        waiting = []
        for job_id, job in zip(ids, store.get_jobs(ids), strict=True):
            if job is None or job.status != "queued":
                # started, finished or expired: the index only keeps queued jobs
                store.sweeps.forget_queued(job_id)
            else:
                waiting.append(job)
        if not waiting:
            return 0
        queues = {job.queue or INTERACTIVE for job in waiting}
        present = self.messages(queues)
        if present is None:
            log.warning(
                "reconcile skipped: too many messages to read",
                extra={"limit": SCAN_MAX, "candidates": len(waiting)},
            )
            return 0
        suspects = dict(
            zip(
                [job.id for job in waiting],
                store.sweeps.suspected_since([job.id for job in waiting]),
                strict=True,
            )
        )
        resent = 0
        for job in waiting:
            job_id = job.id
            if job_id in present:
                # waiting in its queue (or held by a worker): look again after the bound
                store.sweeps.relist_queued(job_id, now)
                store.sweeps.clear_suspect(job_id)
                continue
            first_missed = suspects.get(job_id)
            if first_missed is None:
                store.sweeps.suspect(job_id, now)
                continue
            if now - first_missed < self.confirm_after:
                continue
            if self.resend(job):
                resent += 1
        return resent

    def resend(self, job: JobRecord) -> bool:
        store = self.store
        current = store.get_job(job.id)
        store.sweeps.clear_suspect(job.id)
        if current is None or current.status != "queued":
            return False
        # listed from now, before the message (state first): lost again, found again
        store.sweeps.relist_queued(job.id, time.time())
        self.ctx.app.send_task(PROCESS_JOB, args=[job.id], queue=job.queue or INTERACTIVE)
        store.record_retry("message_lost")
        log.warning(
            "re-sent a queued job whose message was lost",
            extra={
                "job_id": job.id,
                "tenant": job.tenant,
                "batch_id": job.batch_id,
                "queue": job.queue,
            },
        )
        return True

    def messages(self, queues: set[str]) -> set[str] | None:
        """The job ids of every ``process_job`` message in ``queues`` and ``unacked``;
        None when they hold more than :data:`SCAN_MAX` messages."""
        return self.broker.messages(queues, SCAN_MAX)


__all__ = ["SUSPECTS_KEY", "Reconciler", "job_of", "queue_lists"]
