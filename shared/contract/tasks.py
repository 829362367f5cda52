"""The task contract between API and worker: Celery settings, queue and task names.

The API enqueues by task *name* with ``send_task`` (it never imports ``worker``); the
worker registers functions under the same names. Payloads are ids and plain values only.
Each setting says why it is what it is beside it (docs/operations.md has the stops and
re-queues they give).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from shared.contract.settings import Settings
from shared.redis import sentinel

PROCESS_JOB = "cutout.process_job"
DELIVER_WEBHOOK = "cutout.deliver_webhook"
ENQUEUE_BATCH = "cutout.enqueue_batch"
# announce a job's terminal state (webhooks) when it was reached outside a worker, e.g. a
# DELETE that cancels the last queued item of a batch
ANNOUNCE = "cutout.announce_finished"
# render a succeeded job's result again from a corrected mask (PUT /v1/jobs/{id}/mask)
CORRECT_JOB = "cutout.correct_job"

INTERACTIVE = "interactive"
BULK = "bulk"
WEBHOOKS = "webhooks"
# listed in priority order: with queue_order_strategy=priority a worker empties
# `interactive` before it takes from `bulk`; webhooks go before bulk so that a catalogue
# backlog does not hold every delivery (and retry) back until it drains
QUEUES = (INTERACTIVE, WEBHOOKS, BULK)


def celery_config(settings: Settings) -> dict[str, Any]:
    hard = settings.task_time_limit
    config = _base_config(settings, hard)
    broker = settings.effective_broker_url
    if sentinel.is_sentinel(broker):
        # kombu's Sentinel transport: it asks the Sentinels for the primary on each
        # (re)connect, so the workers and the API follow a failover (docs/operations.md)
        config["broker_url"] = sentinel.broker_url(str(broker))
        config["broker_transport_options"].update(sentinel.transport_options(str(broker)))
    return config


def _base_config(settings: Settings, hard: int) -> dict[str, Any]:
    return {
        "broker_url": settings.effective_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # Above the longest a live worker holds a message: a run (at most the hard
            # limit) after a wait in its prefetch (at most one more run) or a retry's
            # countdown (at most 60 s). Past it kombu hands the message back: this is how
            # a message taken by a worker that died before starting it comes back (its
            # job still `queued`, which the stuck-job sweeper does not see), so it should
            # not be longer than it must (it was 1 h: a crash delayed such jobs that long).
            "visibility_timeout": hard * 2 + 120,
            "queue_order_strategy": "priority",
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "retry_on_timeout": True,
            "health_check_interval": 10,
        },
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": INTERACTIVE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "result_backend": None,
        "task_time_limit": hard,
        # the soft limit fails the job with processing_timeout before the hard kill
        "task_soft_time_limit": hard - min(15, max(1, hard // 5)),
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 20.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "broker_pool_limit": 10,
    }


def make_celery(settings: Settings, name: str = "cutout") -> Celery:
    """A Celery app configured for our contract (used by the API to send, the worker to run)."""
    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def enqueue_job(app: Celery, job_id: str, queue: str = INTERACTIVE) -> None:
    """Queue processing of a job whose record is already stored (enqueue after durable state)."""
    app.send_task(PROCESS_JOB, args=[job_id], queue=queue)
