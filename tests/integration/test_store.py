"""The job store against a real Redis: state machine, batch counters, exactly-once completion."""

from __future__ import annotations

import threading

from shared.ids import new_id, now_iso


def _job(batch_id: str | None = None, tenant: str = "t1") -> dict:
    return {
        "id": new_id("job"),
        "tenant": tenant,
        "status": "queued",
        "created_at": now_iso(),
        "options": {"model": "u2netp"},
        "metadata": {"sku": "A1"},
        "attempts": 0,
        "batch_id": batch_id,
        "webhook": None,
        "source": {"kind": "upload"},
    }


def test_transitions_never_go_backwards(store) -> None:
    job = _job()
    store.create_job(job)
    assert store.transition(job["id"], "processing", ("queued",), attempts="+1").applied
    done = store.transition(job["id"], "succeeded", ("processing",), result={"bytes": 3})
    assert done.applied
    assert done.previous == "processing"
    # a late redelivery cannot move a finished job again
    again = store.transition(job["id"], "processing", ("queued", "processing"))
    assert not again.applied
    assert again.previous == "succeeded"
    record = store.get_job(job["id"])
    assert record.status == "succeeded"
    assert record.attempts == 1
    assert record.result == {"bytes": 3}
    assert record.metadata == {"sku": "A1"}


def test_other_tenant_sees_nothing(store) -> None:
    job = _job(tenant="alice")
    store.create_job(job)
    assert store.get_job(job["id"], tenant="alice") is not None
    assert store.get_job(job["id"], tenant="bob") is None
    assert store.transition("job_missing", "processing", ("queued",)).applied is False


def test_records_carry_retention_ttl(store) -> None:
    job = _job()
    store.create_job(job)
    ttl = store.r.ttl(f"cutout:job:{job['id']}")
    assert 0 < ttl <= 3600


def test_update_job_writes_only_while_the_job_exists(store) -> None:
    job = _job()
    store.create_job(job)
    store.update_job(job["id"], webhook={"state": "delivered", "attempts": 1})
    record = store.get_job(job["id"])
    assert record.webhook == {"state": "delivered", "attempts": 1}
    assert record.status == "queued"
    # an expired (or deleted) job gets no hash of webhook fields alone: no status, no TTL
    store.r.delete(f"cutout:job:{job['id']}")
    store.update_job(job["id"], webhook={"state": "failed", "attempts": 2})
    assert not store.r.exists(f"cutout:job:{job['id']}")
    assert store.get_job(job["id"]) is None


def test_batch_counts_and_single_completion_under_concurrency(store) -> None:
    batch_id = new_id("bat")
    jobs = [_job(batch_id) for _ in range(40)]
    store.create_batch(
        {"id": batch_id, "tenant": "t1", "status": "running", "created_at": now_iso()},
        total=len(jobs),
    )
    store.add_batch_jobs(batch_id, jobs[:25])
    store.add_batch_jobs(batch_id, jobs[25:])
    assert store.get_batch(batch_id).counts["queued"] == 40

    completions: list[str] = []

    def run(job: dict, final: str) -> None:
        store.transition(job["id"], "processing", ("queued",))
        result = store.transition(job["id"], final, ("processing",))
        # a redelivered duplicate tries again and must not count twice
        duplicate = store.transition(job["id"], final, ("processing",))
        assert not duplicate.applied
        if result.batch_completed:
            completions.append(job["id"])

    threads = [
        threading.Thread(target=run, args=(job, "failed" if i % 10 == 0 else "succeeded"))
        for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    batch = store.get_batch(batch_id)
    assert len(completions) == 1
    assert batch.status == "completed"
    assert batch.finished_at
    assert batch.counts == {
        "total": 40,
        "queued": 0,
        "processing": 0,
        "succeeded": 36,
        "failed": 4,
        "canceled": 0,
        "review": 0,  # no job here carried a quality score
    }
    assert [j.id for j in store.iter_batch_jobs(batch_id, chunk=7)] == [j["id"] for j in jobs]


def test_wait_finished_wakes_on_terminal_state(store) -> None:
    job = _job()
    store.create_job(job)
    assert store.wait_finished(job["id"], 0.05) is False
    store.transition(job["id"], "processing", ("queued",))
    timer = threading.Timer(0.2, store.transition, args=(job["id"], "failed", ("processing",)))
    timer.start()
    assert store.wait_finished(job["id"], 10) is True
    # a second waiter is woken too
    assert store.wait_finished(job["id"], 1) is True
