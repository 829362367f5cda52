"""The worker's Celery application: the contract from shared.contract.tasks, plus our tasks.

Start with ``cutout worker`` (see cutout/commands/service.py). The model weights are
fetched in the parent before the pool forks; each pool child creates its own ONNX
Runtime sessions in ``worker_process_init`` (load in the child, so that
``worker_max_memory_per_child`` can replace a child without a reload loop).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import Celery, signals

from shared.contract import tasks as contract
from shared.contract.settings import Settings
from shared.contract.tasks import make_celery
from worker import context, reconnect, stops, tasks, warmup
from worker.health import Publisher, consumer_step
from worker.scheduler import Scheduler

log = logging.getLogger("cutout.worker")


def _consumer_publisher(ctx: context.WorkerContext) -> Publisher:
    """Says in Redis that this worker consumes (worker/health.py), for /readyz and
    ``cutout up``; the id is this main process's."""
    consumer_id = f"{socket.gethostname()}.{os.getpid()}"
    return Publisher(
        beat=lambda: ctx.store.consumer_heartbeat(consumer_id),
        gone=lambda: ctx.store.consumer_gone(consumer_id),
    )


def create_worker_app(settings: Settings, pool: str = "prefork") -> Celery:
    app = make_celery(settings, name="cutout-worker")
    # a child that grew past this is replaced after its current task (hostile images)
    app.conf.worker_max_memory_per_child = 2_500_000  # KiB
    ctx = context.configure(settings, app)
    # what the first heartbeats say of fast mode, before the model loads (worker/warmup.py)
    ctx.fast_state = warmup.fast_prospect(settings)
    tasks.register(app)
    # a job whose pool child dies while this worker stops is handed back (worker/stops.py)
    app.tasks[contract.PROCESS_JOB].Request = stops.StopAwareRequest
    publisher = _consumer_publisher(ctx)
    # liveness and readiness: the consumer touches the heartbeat file (when set) and
    # says in Redis that it consumes, while it consumes (worker/health.py)
    app.steps["consumer"].add(consumer_step(settings.worker_heartbeat_file, publisher))
    # runs a broker connection loss cancelled go back to their queue on reconnection
    app.steps["consumer"].add(reconnect.restore_step())

    # the child reports before it warms up (worker/warmup.py)
    app.conf.worker_proc_alive_timeout = warmup.PROC_ALIVE_TIMEOUT

    @signals.worker_shutting_down.connect(weak=False)
    def _stopping(**_: Any) -> None:
        # in the main process, from its signal handler: before any child is lost to it
        stops.mark_stopping()
        publisher.stop()

    @signals.worker_process_init.connect(weak=False)
    def _init_child(**_: Any) -> None:
        # after the fork: sessions and the scheduler thread belong to this child only;
        # the sessions are created after the child reports to its parent
        ctx = context.get()
        warmup.warm_in_background(ctx)
        Scheduler(ctx, pool_child=True).start()

    if pool != "prefork":

        @signals.worker_init.connect(weak=False)
        def _init_solo(**_: Any) -> None:
            # the solo and threads pools never fork (CUDA workers): set up in this process
            ctx = context.get()
            if settings.batch_size > 1:
                # the pool's threads share inference calls (worker/engine/batching.py);
                # the engine is imported where it is used, never in a prefork parent
                from worker.engine.batching import BatchCollector

                ctx.engine.collector = BatchCollector(settings.batch_size)
            ctx.warm()
            Scheduler(ctx).start()

    return app
