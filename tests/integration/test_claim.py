"""A worker claims a job against a real Redis: the plain case (a queued single job on a
built-in model) is read and moved to processing in one command; every other case comes
back unchanged, with the record the worker decides from (shared/stores/jobs.py ``claim``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from shared.contract.options import MODELS
from shared.ids import new_id, now_iso
from shared.stores.jobs import PROCESSING_KEY, QUEUED_KEY, RedisStore, job_key


@pytest.fixture
def store(module_db: str) -> RedisStore:
    client = redis.Redis.from_url(module_db, decode_responses=True)
    client.flushdb()
    return RedisStore(client, 3600)


def _job(store: RedisStore, **changes: Any) -> dict[str, Any]:
    job = {
        "id": new_id("job"),
        "tenant": "t1",
        "status": "queued",
        "created_at": now_iso(),
        "options": {"model": "u2netp"},
        "attempts": 0,
        "batch_id": None,
        "webhook": None,
        **changes,
    }
    store.create_job(job)
    return job


def _claim(store: RedisStore, job_id: str) -> Any:
    return store.claim(job_id, MODELS, run_deadline=time.time() + 60, started_at=now_iso())


@contextmanager
def _commands_sent(r: Any) -> Iterator[list[str]]:
    """The commands clients sent while the block ran (SLOWLOG records every one at a
    threshold of 0; a script's own calls show with no client address)."""
    sent: list[str] = []
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    try:
        yield sent
        entries = r.execute_command("SLOWLOG", "GET", "-1")
    finally:
        r.config_set("slowlog-log-slower-than", 10000)
    for entry in reversed(entries):
        name = str(entry[3][0]).upper()
        if entry[4] != "?:0" and name not in ("SLOWLOG", "CONFIG"):
            sent.append(name)


def test_a_plain_job_is_read_and_started_in_one_command(store: RedisStore) -> None:
    job = _job(store)
    _claim(store, "job_warm")  # the script loaded on the server (SCRIPT LOAD, once)
    with _commands_sent(store.r) as sent:
        claimed = _claim(store, job["id"])
    assert claimed.applied
    assert sent == ["EVALSHA"]  # the read happens inside the script, not before it
    # the record as it was read: what the run works from
    assert claimed.before.status == "queued"
    assert claimed.before.options == {"model": "u2netp"}
    now = store.get_job(job["id"])
    assert now.status == "processing"
    assert now.attempts == 1
    assert now.started_at
    assert store.r.zscore(PROCESSING_KEY, job["id"]) is not None
    assert store.r.zscore(QUEUED_KEY, job["id"]) is None
    # a second delivery of the same message starts nothing: the caller decides
    again = _claim(store, job["id"])
    assert not again.applied
    assert again.before.status == "processing"
    assert store.get_job(job["id"]).attempts == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_id": "bat_1"},  # a batch item: its batch counters move with it
        {"options": {"model": "tenant-model"}},  # a custom model waits in its line
        {"status": "canceled"},
    ],
)
def test_other_cases_come_back_unchanged_with_their_record(
    store: RedisStore, changes: dict[str, Any]
) -> None:
    job = _job(store, **changes)
    before = store.r.hgetall(job_key(job["id"]))
    claimed = _claim(store, job["id"])
    assert not claimed.applied
    assert claimed.before == store.get_job(job["id"])
    assert store.r.hgetall(job_key(job["id"])) == before
    assert store.r.zscore(PROCESSING_KEY, job["id"]) is None


def test_a_missing_job_comes_back_as_none(store: RedisStore) -> None:
    claimed = _claim(store, "job_missing")
    assert not claimed.applied
    assert claimed.before is None
