"""Integration tier: real servers only.

Rules: Redis is a real redis-server, S3 is a real SeaweedFS (`weed mini`), workers are
real `cutout worker` processes, and the model weights are the real pinned files. No
in-memory Redis or S3 stand-ins, no mocked boto3, no stub model. Servers start once per session on
free ports (tests/conftest.py); each test uses fresh ids so tests do not see each other.
Use u2netp where the model does not matter (speed), u2net where it does.

A module that needs a Redis database no other module's jobs reach (its own worker, or a
sweep or listing over every key) takes ``module_db`` (tests/conftest.py: one per module, from the
session's allocator) and, for a worker consuming it, ``module_worker`` (u2netp; the module's
``WORKER_ENV`` adds settings). ``images`` and ``receiver`` are local HTTP servers, one
per module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit.batch import ImageServer, Receiver
from testkit.procs import ApiProcess, WorkerProcess, http, multipart, running_api, wait_for

# the process handles and HTTP helpers live in testkit.procs (bench/ uses them too); tests
# import them from here as before
__all__ = ["ApiProcess", "WorkerProcess", "http", "multipart", "running_api", "wait_for"]


@pytest.fixture(scope="session")
def store(redis_url: str):  # type: ignore[no-untyped-def]
    from shared.stores.jobs import RedisStore

    return RedisStore.from_url(redis_url, retention=3600)


@pytest.fixture(scope="session")
def storage(s3_endpoint: str, s3_credentials: dict[str, str]):  # type: ignore[no-untyped-def]
    from shared.s3.storage import S3Storage

    return S3Storage(s3_endpoint, "cutout-test")


@pytest.fixture(scope="session")
def start_worker(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `cutout worker` processes; all are stopped at the end of the session."""
    started: list[WorkerProcess] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(
        extra_env: dict[str, str] | None = None, args: list[str] | None = None, wait: bool = True
    ) -> WorkerProcess:
        env = dict(
            service_env,
            CUTOUT_MODELS="u2netp,u2net",
            CUTOUT_WORKER_CONCURRENCY="1",
            CUTOUT_ORT_THREADS="1",
        )
        env.update(extra_env or {})
        worker = WorkerProcess(env, logs / f"worker-{len(started)}.log", args or [])
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """One shared worker process for tests that only need jobs processed."""
    return start_worker()


@pytest.fixture(scope="session")
def api_server(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """One real API process for the session (auth off: it binds loopback)."""
    with running_api(service_env, tmp_path_factory.mktemp("api") / "api.log") as api:
        yield api


@pytest.fixture(scope="module")
def module_worker(
    request: pytest.FixtureRequest, start_worker: Callable[..., WorkerProcess], module_db: str
) -> Iterator[WorkerProcess]:
    """One real `cutout worker` (u2netp) consuming ``module_db``; stopped after the module.

    The test module's ``WORKER_ENV`` (a dict, optional) adds or overrides settings.
    """
    extra: dict[str, Any] = getattr(request.module, "WORKER_ENV", {})
    worker = start_worker({"CUTOUT_REDIS_URL": module_db, "CUTOUT_MODELS": "u2netp", **extra})
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    """Serves the images a test adds (``images.add(path, data)`` gives its URL)."""
    server = ImageServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A webhook receiver that records every delivery (``receiver.plan`` sets answers)."""
    server = Receiver()
    yield server
    server.stop()
