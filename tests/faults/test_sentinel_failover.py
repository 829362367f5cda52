"""Redis behind Sentinel loses its primary under a batch: nothing is lost.

The stack's Redis is a primary, a replica and three Sentinels (testkit/sentinel.py); the
API and both workers reach it only through ``CUTOUT_REDIS_URL=sentinel://…`` and
``CUTOUT_REDIS_MASTER_NAME``. Mid-batch the link from the primary to its replica is cut
first (the primary goes on acknowledging writes that are on it alone: the workers'
progress, the hard case of a failover) and then the primary is SIGKILLed. Sentinel
promotes the replica, which lacks those writes.

What a user relies on, asserted: while there is no primary the API answers 503 with
``Retry-After`` (never 500, never a dropped connection); the workers reconnect by
themselves; every job ends ``succeeded`` with exact accounting (counts, one result per
job, one ``batch.completed``). The progress the replica never received is done again
(docs/operations.md, "What a failover loses").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.batch import photo
from testkit.procs import http, multipart, wait_for
from testkit.sentinel import MASTER_NAME, SentinelCluster
from tests.faults.conftest import AUTH, FaultStack, assert_exact_accounting

# the second test's batch: it is about the refused submit, and costs CI less
SMALL_BATCH = 10


class SentinelStack(FaultStack):
    """The fault stack with its Redis behind Sentinel."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cluster = SentinelCluster(self.root / "redis-sentinel")
        self.env.update(
            {"CUTOUT_REDIS_URL": self.cluster.url, "CUTOUT_REDIS_MASTER_NAME": MASTER_NAME}
        )
        self.api.env = dict(self.env, CUTOUT_PORT=str(self.api_port))
        self.redis = self.cluster.primary  # what the base class stops

    def start(self, workers: int = 2) -> None:
        self.weed.start()
        self.cluster.start()
        starting = [self.start_worker(wait=False) for _ in range(workers)]
        self.api.start()
        self.wait_s3()
        self.wait_api()
        for worker in starting:
            worker.wait_ready()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.cluster.stop()

    def logs(self) -> str:
        return (
            super().logs()
            + "\n"
            + "\n".join(f"==== {s.name}\n{s.tail(30)}" for s in self.cluster.servers())
        )

    def redis_client(self) -> Any:
        return self.cluster.client()


class GapPoller(threading.Thread):
    """GETs a batch, one of its jobs and /readyz in a loop; records every status with its
    Retry-After, and every connection the API dropped."""

    def __init__(self, url: str, paths: list[str]) -> None:
        super().__init__(name="gap-poller", daemon=True)
        self.url, self.paths = url, paths
        self.answers: list[tuple[str, int | None, str | None]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for path in self.paths:
                try:
                    status, headers, _ = http("GET", self.url + path, headers=AUTH)
                    retry = {k.lower(): v for k, v in headers.items()}.get("retry-after")
                    self.answers.append((path, status, retry))
                except OSError as exc:
                    self.answers.append((path, None, f"{type(exc).__name__}: {exc}"))
            self.stopping.wait(0.05)

    def stop(self) -> list[tuple[str, int | None, str | None]]:
        self.stopping.set()
        self.join(150)
        return self.answers


@pytest.fixture
def sentinel_stack(
    request: pytest.FixtureRequest, tmp_path: Path, model_home: Path
) -> Iterator[SentinelStack]:
    if not (model_home / "u2netp.onnx").exists():
        pytest.skip("u2netp weights missing: run `cutout models fetch`")
    stack = SentinelStack(tmp_path, model_home)
    try:
        stack.start()
        yield stack
    finally:
        try:
            stack.stop()
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is None or report.failed:
                print(stack.logs())


def test_primary_sigkilled_mid_batch_after_its_replica_fell_behind(
    sentinel_stack: SentinelStack,
) -> None:
    stack, cluster = sentinel_stack, sentinel_stack.cluster
    stack.receiver.up()
    batch = stack.submit_batch()
    stack.wait_progress(batch["id"], succeeded=3)
    job_id = stack.jobs(batch["id"])[0]["id"]

    # the replica falls behind while both workers are mid-run (their starts replicated):
    # what they do next is acknowledged by the primary alone; once two more items are
    # recorded there, the primary dies. (A cut between a message's delivery and its
    # job's start leaves that job waiting for visibility_timeout: late, not lost, and
    # 160 s more for this test; docs/operations.md)
    wait_for(lambda: stack.batch(batch["id"])["counts"]["processing"] >= 2, 120, 0.02)
    replicated = cluster.cut_link()
    done = stack.batch(batch["id"])["counts"]["succeeded"]
    stack.wait_progress(batch["id"], succeeded=done + 2)
    unreplicated = cluster.offset(cluster.primary_port) - replicated
    assert unreplicated > 0

    poller = GapPoller(stack.url, [f"/v1/batches/{batch['id']}", f"/v1/jobs/{job_id}", "/readyz"])
    poller.start()
    cluster.primary.kill()
    cluster.wait_promoted()
    # the gap is over once the API is ready on the new primary
    wait_for(lambda: http("GET", stack.url + "/readyz")[0] == 200, 60, 0.1)
    answers = poller.stop()

    statuses = {status for _, status, _ in answers}
    assert None not in statuses, [a for a in answers if a[1] is None][:5]
    assert statuses <= {200, 503}, sorted(statuses, key=str)
    refused = [a for a in answers if a[1] == 503]
    assert refused, "no 503 seen while the primary was gone"
    assert all(retry and retry.isdigit() and int(retry) > 0 for _, _, retry in refused), refused

    assert_exact_accounting(stack, batch["id"])


def submit_one(stack: SentinelStack) -> tuple[int, dict[str, str], bytes]:
    """POST /v1/jobs with a small PNG: (status, headers with lower-case names, body)."""
    body, ctype = multipart(
        {"model": "u2netp"}, {"image": ("late.png", photo((64, 64), seed=99), "image/png")}
    )
    status, headers, raw = http(
        "POST", stack.url + "/v1/jobs", body, {**AUTH, "Content-Type": ctype}
    )
    return status, {k.lower(): v for k, v in headers.items()}, raw


def test_with_min_replicas_to_write_nothing_is_acknowledged_that_the_replica_lacks(
    sentinel_stack: SentinelStack,
) -> None:
    """docs/operations.md's recommended guarantee: with ``min-replicas-to-write 1`` a
    primary cut off from its replica refuses writes, so a submit then is answered 503
    (never a 202 for a job the failover would lose), and the batch in flight still ends
    with exact accounting. Set on the first primary only: with the two replicas this
    setting asks for, the new primary would still have one."""
    stack, cluster = sentinel_stack, sentinel_stack.cluster
    primary = cluster.client(cluster.primary_port)
    primary.config_set("min-replicas-to-write", 1)
    primary.config_set("min-replicas-max-lag", 10)
    stack.receiver.up()
    batch = stack.submit_batch(SMALL_BATCH)
    stack.wait_progress(batch["id"], succeeded=2)

    cluster.cut_link()
    status, headers, raw = submit_one(stack)
    assert status == 503, raw[:500]
    assert json.loads(raw)["code"] == "unavailable"
    assert int(headers["retry-after"]) > 0

    cluster.primary.kill()
    cluster.wait_promoted()
    wait_for(lambda: http("GET", stack.url + "/readyz")[0] == 200, 60, 0.1)
    # every job of the batch, and nothing else (the refused submit left no job to run)
    assert_exact_accounting(stack, batch["id"], SMALL_BATCH)
