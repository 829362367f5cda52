"""Which ``process_job`` messages the broker holds, read from kombu's Redis transport.

The reconciler (worker/reconcile.py) asks this before it re-sends a job: a message is
either waiting in its queue's lists (one per priority step) or taken by a worker and not
yet acknowledged (kombu's ``unacked`` hash, retries waiting for their countdown too).

The key layout is kombu's own and private: the separator, the priority steps and the
``unacked`` hash's name are read from its Redis ``Channel`` class (the defaults, which
shared/contract/tasks.py does not override); the rule that a step's list is ``<queue><sep><step>``
and step 0's is ``<queue>`` itself is kombu's ``Channel._q_for_pri``, written out here.
tests/integration/test_brokerscan.py publishes and takes messages with kombu and Celery
on a real Redis and fails when they land anywhere else; pyproject.toml pins kombu and
Celery to the minor versions it was run against.

Used by the API and the worker.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kombu.transport.redis import Channel

from shared.contract.tasks import PROCESS_JOB
from shared.redis.errors import connect, redis_errors

SCAN_MAX = 50_000  # messages read per scan at most
READ_CHUNK = 1000
# kombu's Redis transport: one list per priority step, "<queue>" for step 0
PRIORITY_SEP: str = Channel.sep
#: the steps with a list of their own beside ``<queue>`` (kombu's are 0, 3, 6, 9)
PRIORITY_STEPS: tuple[int, ...] = tuple(step for step in Channel.priority_steps if step)
#: the hash of messages a worker took and has not acknowledged, by delivery tag
UNACKED: str = Channel.unacked_key


def queue_lists(queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s waiting messages, one per priority step."""
    return [queue] + [f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


def job_of(raw: str | bytes) -> str | None:
    """The job id of a ``process_job`` message as kombu stores it (None for others)."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # an unacked entry: [message, exchange, routing key]
            message = message[0]
        if (message.get("headers") or {}).get("task") != PROCESS_JOB:
            return None
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


class BrokerScan:
    """Reads the broker's Redis (the store's own client when they are one server)."""

    def __init__(self, client: Any) -> None:
        self.r: Any = client

    @classmethod
    def for_broker(cls, broker_url: str | None, redis_url: str | None, store: Any) -> BrokerScan:
        """The broker's scan: a client of its own for a separate ``broker_url``, else the
        store's (``store`` is a :class:`shared.stores.jobs.RedisStore`)."""
        if broker_url and broker_url != redis_url:
            return cls(connect(broker_url))
        return cls(store.r)

    def messages(self, queues: set[str], limit: int = SCAN_MAX) -> set[str] | None:
        """The job ids of every ``process_job`` message in ``queues`` and ``unacked``;
        None when they hold more than ``limit`` messages. Raises Unavailable when the
        broker's Redis fails."""
        with redis_errors("the broker"):
            return self._messages(queues, limit)

    def _messages(self, queues: set[str], limit: int) -> set[str] | None:
        broker = self.r
        lists = [key for queue in sorted(queues) for key in queue_lists(queue)]
        pipe = broker.pipeline(transaction=False)
        for key in lists:
            pipe.llen(key)
        pipe.hlen(UNACKED)
        *lengths, unacked = pipe.execute()
        if sum(lengths) + unacked > limit:
            return None
        found: set[str] = set()
        for key, length in zip(lists, lengths, strict=True):
            for start in range(0, length, READ_CHUNK):
                for raw in broker.lrange(key, start, start + READ_CHUNK - 1):
                    job_id = job_of(raw)
                    if job_id:
                        found.add(job_id)
        if unacked:
            for raw in broker.hvals(UNACKED):
                job_id = job_of(raw)
                if job_id:
                    found.add(job_id)
        return found
