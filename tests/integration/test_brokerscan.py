"""kombu's Redis layout is what ``shared/stores/brokerscan.py`` reads.

brokerscan (the reconciler's scan, the API's queue depths) reads keys that are kombu's
private business: a list per priority step named ``<queue><sep><step>``, and the
``unacked`` hash of messages a worker took and has not acknowledged. Nothing else would
notice if a kombu release moved them: the reconciler would see every waiting job as lost
and send it again. Here the contract's own Celery app publishes ``process_job`` messages
with and without a priority, a real kombu consumer takes one without acknowledging it,
all on a real Redis (a database of this module's own), and each must be where brokerscan
looks, and nowhere else. pyproject.toml pins kombu and Celery to the minor versions this
was run against; a new one is allowed once this passes with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Queue
from kombu.transport.redis import Channel

from shared.contract.settings import load_settings
from shared.contract.tasks import DELIVER_WEBHOOK, PROCESS_JOB, celery_config, make_celery
from shared.ids import new_id
from shared.stores.brokerscan import PRIORITY_STEPS, UNACKED, BrokerScan, job_of, queue_lists

# a message's priority -> the index in queue_lists() of the list it waits in: no priority
# and 0 in the queue's own list, any other in the list of the highest step at or below it
PRIORITIES: dict[int | None, int] = {None: 0, 0: 0, 2: 0, 4: 1, 6: 2, 8: 2, 9: 3}


@pytest.fixture(scope="module")
def client(module_db: str) -> Iterator[Any]:
    r = redis.Redis.from_url(module_db, decode_responses=True)
    yield r
    r.close()


@pytest.fixture(scope="module")
def app(module_db: str) -> Any:
    return make_celery(load_settings({"CUTOUT_REDIS_URL": module_db}))


def test_the_layout_is_kombus_defaults_and_the_contract_keeps_them() -> None:
    """brokerscan takes kombu's class defaults (step 0 being ``<queue>`` itself, no key
    prefix); the contract's Celery options must not move them (a transport option with
    one of these names would put the keys elsewhere)."""
    assert tuple(Channel.priority_steps) == (0, *PRIORITY_STEPS)
    assert Channel.global_keyprefix == ""
    options = celery_config(load_settings({"CUTOUT_REDIS_URL": "redis://127.0.0.1:1/0"}))
    moved = {"sep", "unacked_key", "priority_steps", "global_keyprefix"}
    assert moved.isdisjoint(options["broker_transport_options"])


def test_waiting_and_unacknowledged_messages_are_where_brokerscan_reads(
    app: Any, client: Any
) -> None:
    queue = f"q-{new_id('q')}"
    lists = queue_lists(queue)
    sent: dict[str, str] = {}  # job id -> the list it should wait in
    for priority, index in PRIORITIES.items():
        job_id = new_id("job")
        app.send_task(PROCESS_JOB, args=[job_id], queue=queue, priority=priority)
        sent[job_id] = lists[index]
    # another task's message on the same queue: kombu keeps it, brokerscan skips it
    app.send_task(DELIVER_WEBHOOK, args=["not-a-job"], queue=queue)

    # every message waits in the list brokerscan names for its priority, and only there
    waiting = {
        key: [job_of(raw) for raw in client.lrange(key, 0, -1)]
        for key in client.scan_iter(count=1000)
        if client.type(key) == "list"
    }
    assert set(waiting) == set(lists)
    for job_id, key in sent.items():
        assert job_id in waiting[key]
    assert sum(len(found) for found in waiting.values()) == len(sent) + 1
    scan = BrokerScan(client)
    assert scan.messages({queue}) == set(sent)

    # a consumer takes one and does not acknowledge it: it moves to kombu's `unacked`
    taken: list[Any] = []
    with app.connection_for_read() as connection:
        consumer = connection.Consumer(
            [Queue(queue)], on_message=taken.append, accept=["json"], prefetch_count=1
        )
        with consumer:
            connection.drain_events(timeout=10)
            (message,) = taken
            taken_id = message.payload[0][0]
            assert message.headers["task"] == PROCESS_JOB
            assert [job_of(raw) for raw in client.hvals(UNACKED)] == [taken_id]
            assert taken_id not in [job_of(m) for key in lists for m in client.lrange(key, 0, -1)]
            # the waiting and the taken, nothing else
            assert scan.messages({queue}) == set(sent)
            message.ack()
    # acknowledged: gone from `unacked`, and from what brokerscan finds
    assert client.hlen(UNACKED) == 0
    assert scan.messages({queue}) == set(sent) - {taken_id}
