"""Runs that a lost broker connection cancelled go back to their queue once it is back.

When a worker loses its broker connection (Redis failing over to its replica, a Redis
restart) Celery cancels the late-acknowledged runs in flight
(``worker_cancel_long_running_tasks_on_connection_loss``): their channel is gone, so they
could never be acknowledged. The pool child hands its job back (worker/stops.py: the job
is ``queued`` again, or stays ``processing`` when Redis was down at that moment). The
message, though, stays in kombu's ``unacked`` set on the server, and kombu restores it
only after ``visibility_timeout`` (2 × ``CUTOUT_TASK_TIME_LIMIT`` + 120 s: 12 minutes by
default), because the channel that would have restored it died with the connection. The
reconciler does not re-send it either: a message in ``unacked`` is one a worker holds.

So the worker's main process notes the delivery tag of every run Celery cancels
(:func:`note_cancelled`, from :class:`worker.stops.StopAwareRequest`), and
:func:`restore_step`'s ``start``, which runs each time the consumer is connected again,
moves those messages from ``unacked`` to the head of their queues with kombu's
``restore_by_tag`` (one atomic transaction per message: a move, never a copy). A tag the
new primary does not hold (its delivery was never replicated) is skipped: that message
is still in its queue. The cancelled runs go on at once instead of 12 minutes later
(tests/faults/test_sentinel_failover.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("cutout.worker")

_lock = threading.Lock()
_cancelled: list[str] = []


def note_cancelled(delivery_tag: str | None) -> None:
    """Remember a cancelled run's message, to restore on the next (re)connection."""
    if delivery_tag:
        with _lock:
            _cancelled.append(delivery_tag)


def _take() -> list[str]:
    with _lock:
        tags = list(_cancelled)
        _cancelled.clear()
    return tags


def restore(qos: Any) -> int:
    """Move the noted messages back to their queues through ``qos`` (kombu's Redis
    QoS of a live channel); returns how many tags were tried."""
    tags = _take()
    for tag in tags:
        try:
            qos.restore_by_tag(tag, leftmost=True)
        except Exception as exc:  # noqa: BLE001 - visibility_timeout restores it anyway
            log.warning(
                "could not hand a cancelled run's message back: %s",
                type(exc).__name__,
                extra={"delivery_tag": tag},
            )
    if tags:
        log.warning(
            "handed back the messages of runs cancelled by a broker connection loss",
            extra={"messages": len(tags)},
        )
    return len(tags)


def restore_step() -> type:
    """A consumer bootstep: on each start (the first connection and every reconnection)
    it restores the messages of the runs the last connection loss cancelled."""
    from celery import bootsteps

    class RestoreCancelled(bootsteps.StartStopStep):  # type: ignore[misc]
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def start(self, consumer: Any) -> None:
            qos = getattr(getattr(consumer.task_consumer, "channel", None), "qos", None)
            if qos is not None and hasattr(qos, "restore_by_tag"):
                restore(qos)

    return RestoreCancelled
