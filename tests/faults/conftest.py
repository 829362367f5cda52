"""Fault tier: the whole service as real processes, one fresh stack per test, and a fault.

Rules:
- Every test gets its OWN stack, started and stopped by the test's fixture: a fresh
  ``redis-server`` with AOF (appendfsync everysec) in the test's folder, a fresh
  ``weed mini`` S3, one real ``cutout api`` (gunicorn) and two real ``cutout worker``
  processes (concurrency 1, one ONNX thread each, u2netp), plus a webhook receiver on
  127.0.0.1 that the test can take down and bring back on the same port. Nothing is
  shared between tests, so a test may kill, stop or restart any part of its stack.
- A fault is injected with a real signal or a real restart (SIGKILL a worker, SIGTERM
  Redis and start it again on the same port and data folder, stop S3 and start it again
  on the same ports and folder, ...), never by patching code.
- Every test ends with :func:`assert_exact_accounting`: every job succeeded, each result
  stored exactly once (the S3 listing of ``outputs/<tenant>/`` has one object per job,
  of the size the job record names), the batch counts are exact, nothing is left
  ``processing``, and the receiver saw exactly one distinct ``webhook-id`` for
  ``batch.completed`` (retries of that id are allowed), every delivery verified with the
  reference ``standardwebhooks`` package.
- No timed assertions: waits have generous limits and only bound a hung test.
- Short knobs keep the tier fast (about a minute a test on 2 cores):
  ``CUTOUT_TASK_TIME_LIMIT=20`` (soft limit 16 s, room for a loaded machine; the sweeper
  re-queues a dead run 25-35 s after it started),
  ``CUTOUT_WEBHOOK_RETRY_SCHEDULE=2,4,8,16,30,60``, ``CUTOUT_RECONCILE_AFTER=5`` (the
  reconciler looks at every job queued over 5 s, so every fault test also checks that it
  never re-sends a job whose message waits or is held by a worker).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPException
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from cutout.stack import (
    Server,
    WeedPorts,
    free_port,
    redis_ready,
    redis_server,
    s3_ready,
    weed_server,
)
from testkit.batch import photo
from tests.conftest import S3_CREDENTIALS
from tests.integration.conftest import WorkerProcess, http, wait_for

TENANT = "acme"
API_KEY = "acme-fault-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BUCKET = "cutout-faults"
BATCH_SIZE = 30
IMAGE_SIZE = (300, 300)
RETRY_SCHEDULE = "2,4,8,16,30,60"
TASK_TIME_LIMIT = 20


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # lets the stack fixture print its logs when the test failed
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


# -- the webhook receiver -------------------------------------------------------------


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float

    def verify(self, secret: str) -> dict[str, Any]:
        """The payload, checked by the reference Standard Webhooks library (raises if not)."""
        payload = Webhook(secret).verify(self.body, self.headers)
        assert isinstance(payload, dict)
        return payload


class HookReceiver:
    """Answers 200 to every POST on a fixed 127.0.0.1 port; ``down()`` closes the port
    (connections are refused, as from a crashed receiver) and ``up()`` opens it again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/cutout"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.deliveries.append(Delivery(headers, body, time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)


# -- the stack ------------------------------------------------------------------------


def batch_body(count: int, webhook_url: str) -> tuple[bytes, str]:
    """A multipart POST /v1/batches body: ``count`` distinct ~300×300 PNGs, u2netp."""
    boundary = "cutout" + secrets.token_hex(8)
    parts = []
    for name, value in (
        ("options", json.dumps({"model": "u2netp"})),
        ("webhook_url", webhook_url),
        ("metadata", json.dumps({"test": "faults"})),
    ):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for index in range(count):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; '
            f'filename="item-{index:02d}.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
            + photo(IMAGE_SIZE, seed=index)
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class FaultStack:
    """Redis, S3, the API and workers of one test, each a real process it may fault."""

    root: Path
    model_home: Path
    receiver: HookReceiver = field(default_factory=HookReceiver)
    workers: list[WorkerProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis = redis_server(self.root / "redis", self.redis_port)
        s3_env = dict(os.environ, **S3_CREDENTIALS)
        self.weed_ports = WeedPorts.pick()
        self.s3_endpoint = f"http://127.0.0.1:{self.weed_ports.s3}"
        self.weed = weed_server(self.root / "s3", self.weed_ports, BUCKET, s3_env)
        self.env = dict(os.environ)
        self.env.update(S3_CREDENTIALS)
        self.env.update(
            {
                "CUTOUT_REDIS_URL": self.redis_url,
                "CUTOUT_S3_ENDPOINT_URL": self.s3_endpoint,
                "CUTOUT_S3_BUCKET": BUCKET,
                "CUTOUT_MODEL_HOME": str(self.model_home),
                "CUTOUT_MODELS": "u2netp",
                "CUTOUT_API_KEYS": f"{TENANT}:{API_KEY}",
                "CUTOUT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
                "CUTOUT_RATE_LIMIT": "1000",
                "CUTOUT_RATE_BURST": "100000",
                "CUTOUT_WORKER_CONCURRENCY": "1",
                "CUTOUT_ORT_THREADS": "1",
                "CUTOUT_TASK_TIME_LIMIT": str(TASK_TIME_LIMIT),
                "CUTOUT_WEBHOOK_RETRY_SCHEDULE": RETRY_SCHEDULE,
                "CUTOUT_RECONCILE_AFTER": "5",
                "CUTOUT_LOG_FORMAT": "json",
            }
        )
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.api = Server(
            "api",
            [sys.executable, "-m", "cutout", "api", "--workers", "1"],
            self.root / "api.log",
            env=dict(self.env, CUTOUT_PORT=str(self.api_port)),
        )

    # -- processes ------------------------------------------------------------------

    def start(self, workers: int = 2) -> None:
        # everything at once: workers and the API retry their connections while the
        # servers come up, and the model loads meanwhile
        self.redis.start()
        self.weed.start()
        self.wait_redis()
        starting = [self.start_worker(wait=False) for _ in range(workers)]
        self.api.start()
        self.wait_s3()
        self.wait_api()
        for worker in starting:
            worker.wait_ready()

    def start_worker(self, wait: bool = True) -> WorkerProcess:
        worker = WorkerProcess(self.env, self.root / f"worker-{len(self.workers)}.log", [])
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def wait_redis(self) -> None:
        self.redis.wait_until(redis_ready(self.redis_port), 30)

    def wait_s3(self) -> None:
        self.weed.wait_until(s3_ready(self.s3_endpoint, BUCKET, self.env), 90)

    def wait_api(self) -> None:
        def ready() -> bool:
            try:
                return http("GET", f"{self.url}/healthz")[0] == 200
            except OSError:
                return False

        self.api.wait_until(ready, 60)

    def stop(self) -> None:
        # SIGTERM to all first, then wait: idle workers and the API exit together
        for worker in self.workers:
            if worker.proc.poll() is None:
                os.killpg(worker.proc.pid, signal.SIGTERM)
        self.api.signal(signal.SIGTERM)
        for worker in self.workers:
            worker.stop()
        self.api.stop()
        self.receiver.down()
        # their data goes with the test's folder: no need to wait for a clean exit
        self.weed.kill()
        self.redis.kill()

    def logs(self) -> str:
        out = []
        for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*/*.log")):
            lines = path.read_text(errors="replace").splitlines()[-60:]
            out.append(f"==== {path.name} (last {len(lines)} lines)\n" + "\n".join(lines))
        return "\n".join(out)

    # -- the API --------------------------------------------------------------------

    def get(self, path: str) -> dict[str, Any]:
        status, _, body = http("GET", self.url + path, headers=AUTH)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)  # type: ignore[no-any-return]

    def submit_batch(self, count: int = BATCH_SIZE) -> dict[str, Any]:
        body, ctype = batch_body(count, self.receiver.url)
        status, _, raw = http(
            "POST", self.url + "/v1/batches", body, {**AUTH, "Content-Type": ctype}
        )
        assert status == 202, raw[:1000]
        return json.loads(raw)  # type: ignore[no-any-return]

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self.get(f"/v1/batches/{batch_id}")

    def jobs(self, batch_id: str) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = self.get(f"/v1/batches/{batch_id}/jobs?limit=100{cursor}")
            jobs += page["items"]
            if not page.get("next_cursor"):
                return jobs
            cursor = f"&cursor={page['next_cursor']}"

    def wait_progress(self, batch_id: str, succeeded: int = 4, timeout: float = 120) -> None:
        """Until at least ``succeeded`` items are done: the batch is well in flight."""
        wait_for(lambda: self.batch(batch_id)["counts"]["succeeded"] >= succeeded, timeout, 0.05)

    def wait_completed(self, batch_id: str, timeout: float = 300) -> dict[str, Any]:
        """Until the batch is completed and its batch.completed event is delivered."""

        def done() -> dict[str, Any] | None:
            batch = self.batch(batch_id)
            hook = batch.get("webhook") or {}
            ok = batch["status"] == "completed" and hook.get("status") == "delivered"
            return batch if ok else None

        return wait_for(done, timeout, 0.2)  # type: ignore[no-any-return]

    def webhook_secret(self) -> str:
        return str(self.get("/v1/webhooks/secret")["secret"])

    def metrics(self) -> str:
        status, _, body = http("GET", self.url + "/metrics")
        assert status == 200
        return body.decode()

    def redis_client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def stored_outputs(self) -> dict[str, int]:
        """Every object under ``outputs/<tenant>/`` in S3: key → size."""
        from shared.s3.storage import S3Storage

        storage = S3Storage(
            self.s3_endpoint,
            BUCKET,
            access_key=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        out: dict[str, int] = {}
        paginator = storage.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET, Prefix=f"outputs/{TENANT}/"):
            for item in page.get("Contents", []):
                out[item["Key"]] = int(item["Size"])
        return out


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path, model_home: Path) -> Iterator[FaultStack]:
    """A fresh, running stack for this test alone; its logs are printed if the test fails."""
    if not (model_home / "u2netp.onnx").exists():
        pytest.skip("u2netp weights missing: run `cutout models fetch`")
    stack = FaultStack(tmp_path, model_home)
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


# -- the accounting -------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def assert_exact_accounting(
    stack: FaultStack, batch_id: str, count: int = BATCH_SIZE, *, exact_metrics: bool = True
) -> list[dict[str, Any]]:
    """Every job succeeded, each result stored once, counts exact, one batch.completed.

    Returns the jobs, for the test's own further checks.
    """
    batch = stack.wait_completed(batch_id)
    review = batch["counts"].pop("review")
    assert batch["counts"] == {
        "total": count,
        "queued": 0,
        "processing": 0,
        "succeeded": count,
        "failed": 0,
        "canceled": 0,
    }

    jobs = stack.jobs(batch_id)
    assert len(jobs) == count
    assert len({job["id"] for job in jobs}) == count
    assert [job["status"] for job in jobs] == ["succeeded"] * count, [
        (job["id"], job["status"], job.get("error")) for job in jobs if job["status"] != "succeeded"
    ]
    # each scored cutout below the threshold counted once, however often its job ran
    assert review == sum(bool(job["result"]["quality"]["review"]) for job in jobs)
    assert all(job["error"] is None for job in jobs)
    assert all(job["attempts"] >= 1 for job in jobs)

    # each result stored exactly once, under its job's key, of the recorded size
    stored = stack.stored_outputs()
    expected = {f"outputs/{TENANT}/{job['id']}/result.png": job["result"]["bytes"] for job in jobs}
    assert stored == expected

    # nothing left behind in the processing set (the sweeper's view)
    r = stack.redis_client()
    assert r.zcard("cutout:processing") == 0

    # exactly one batch.completed event: one webhook-id, every delivery verified
    time.sleep(1.0)  # a second event, if there were one, would be queued by now
    secret = stack.webhook_secret()
    deliveries = stack.receiver.received()
    assert deliveries, "no webhook delivered"
    events = [(d, d.verify(secret)) for d in deliveries]
    assert {payload["type"] for _, payload in events} == {"batch.completed"}
    assert len({d.headers["webhook-id"] for d, _ in events}) == 1
    for _, payload in events:
        assert payload["data"]["id"] == batch_id
        assert payload["data"]["counts"]["succeeded"] == count
        assert payload["data"]["counts"]["failed"] == 0
    assert batch["webhook"]["id"] == deliveries[0].headers["webhook-id"]

    # the operator's view agrees
    text = stack.metrics()
    assert metric(text, "cutout_jobs_finished_total", model="u2netp", status="failed") == 0
    assert "cutout_job_errors_total{" not in text  # no failed job, so no error code
    succeeded = metric(text, "cutout_jobs_finished_total", model="u2netp", status="succeeded")
    if exact_metrics:
        assert succeeded == count
    assert (
        metric(
            text, "cutout_webhook_deliveries_total", event="batch.completed", outcome="delivered"
        )
        >= 1
    )
    return jobs


# -- a client that polls the whole time -----------------------------------------------


@dataclass
class Poll:
    at: float
    path: str
    status: int | None
    error: str | None = None


class Poller(threading.Thread):
    """Polls the batch, its job list and one job in a loop, recording every answer."""

    CONNECTION_ERRORS = (OSError, HTTPException)

    def __init__(self, stack: FaultStack, batch_id: str, job_id: str) -> None:
        super().__init__(name="poller", daemon=True)
        self.stack = stack
        self.paths = [
            f"/v1/batches/{batch_id}",
            f"/v1/batches/{batch_id}/jobs?limit=100",
            f"/v1/jobs/{job_id}",
        ]
        self.polls: list[Poll] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for path in self.paths:
                started = time.monotonic()
                try:
                    status, _, _ = http("GET", self.stack.url + path, headers=AUTH)
                    self.polls.append(Poll(started, path, status))
                except self.CONNECTION_ERRORS as exc:
                    self.polls.append(Poll(started, path, None, f"{type(exc).__name__}: {exc}"))
            self.stopping.wait(0.05)

    def stop(self) -> list[Poll]:
        self.stopping.set()
        self.join(150)
        return self.polls


__all__ = [
    "BATCH_SIZE",
    "Callable",
    "FaultStack",
    "HookReceiver",
    "Poller",
    "assert_exact_accounting",
    "metric",
]
