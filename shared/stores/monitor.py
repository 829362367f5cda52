"""What the API reads from Redis to report on the service: worker telemetry, the depth of
each Celery queue, and whether Celery's own Redis answers.

Read-only. The queue depths come from the broker's Redis (``CUTOUT_BROKER_URL``, when it
is another server than the job store's), the rest from the job store's. Every method but
the pings raises Unavailable (shared/redis/errors.py) when Redis does not answer.

Used by the API only.
"""

from __future__ import annotations

from typing import Any

import redis

from shared.contract.tasks import QUEUES
from shared.redis.errors import connect, redis_errors
from shared.stores import telemetry
from shared.stores.brokerscan import PRIORITY_STEPS, queue_lists
from shared.stores.jobs import RedisStore


class Monitor:
    """Reads for ``/metrics``, ``/readyz`` and the submit-time fast-mode check."""

    def __init__(self, client: Any, broker: Any | None = None) -> None:
        self.r = client
        #: Celery's own Redis when it is another server (None: the job store's)
        self.broker = broker

    @classmethod
    def from_store(cls, store: RedisStore, broker_url: str | None = None) -> Monitor:
        """Reads on the job store's Redis, and on ``broker_url``'s when that is another
        one (a client is made here; it connects on first use)."""
        broker = connect(broker_url) if broker_url else None
        return cls(store.r, broker)

    @property
    def separate_broker(self) -> bool:
        """True when Celery's queues live in another Redis than the job store's."""
        return self.broker is not None

    def queue_depths(self) -> dict[str, int]:
        """Tasks waiting in each Celery queue (all priority steps together)."""
        client = self.broker if self.broker is not None else self.r
        with redis_errors("the broker"):
            pipe = client.pipeline(transaction=False)
            for queue in QUEUES:
                for key in queue_lists(queue):
                    pipe.llen(key)
            lengths = pipe.execute()
        step = 1 + len(PRIORITY_STEPS)
        return {
            queue: int(sum(lengths[index * step : (index + 1) * step]))
            for index, queue in enumerate(QUEUES)
        }

    def worker_stats(self) -> dict[str, dict[str, float]]:
        """The counters workers recorded (shared/stores/telemetry.py ``read_stats``)."""
        with redis_errors():
            return telemetry.read_stats(self.r)

    def workers(self) -> list[dict[str, Any]]:
        """Every worker process with a live heartbeat (shared/stores/telemetry.py ``workers``)."""
        with redis_errors():
            return telemetry.workers(self.r)

    def consumers(self) -> int:
        """How many workers take messages now (shared/stores/telemetry.py ``consumers``)."""
        with redis_errors():
            return telemetry.consumers(self.r)

    def serves_fast(self) -> bool | None:
        """Whether a live worker serves fast mode; None when no worker is alive to say."""
        with redis_errors():
            return telemetry.serves_fast(self.r)

    def broker_ping(self) -> bool:
        """Whether the separate broker answers (True when there is none)."""
        if self.broker is None:
            return True
        try:
            return bool(self.broker.ping())
        except redis.RedisError:
            return False
