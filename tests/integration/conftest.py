"""Integration tier: real servers only.

Rules: Redis is a real redis-server, S3 is a real SeaweedFS (`weed mini`), workers are
real `cutout worker` processes, and the model weights are the real pinned files. No
in-memory Redis or S3 stand-ins, no mocked boto3, no stub model. Servers start once per session on
free ports (tests/conftest.py); each test uses fresh ids so tests do not see each other.
Use u2netp where the model does not matter (speed), u2net where it does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="session")
def store(redis_url: str):  # type: ignore[no-untyped-def]
    from shared.store import RedisStore

    return RedisStore.from_url(redis_url, retention=3600)


@pytest.fixture(scope="session")
def storage(s3_endpoint: str, s3_credentials: dict[str, str]):  # type: ignore[no-untyped-def]
    from shared.storage import S3Storage

    return S3Storage(s3_endpoint, "cutout-test")


class WorkerProcess:
    """A real `cutout worker` subprocess with its log file."""

    def __init__(self, env: dict[str, str], log_path: Path, args: list[str]) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cutout", "worker", *args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.tail()}")
            if "ready." in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready: {self.tail()}")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


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


def wait_for(predicate: Callable[[], object], timeout: float = 60, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class ApiProcess:
    """A real `cutout api` (gunicorn) subprocess on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        from cutout.stack import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cutout", "api"],
            env=dict(env, CUTOUT_PORT=str(self.port)),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"api exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("api not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="session")
def api_server(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """One real API process for the session (auth off: it binds loopback)."""
    api = ApiProcess(service_env, tmp_path_factory.mktemp("api") / "api.log")
    try:
        api.wait_ready()
        yield api
    finally:
        api.stop()


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    """Encode a multipart/form-data body; returns (body, content type)."""
    import secrets

    boundary = "cutout" + secrets.token_hex(8)
    out = []
    for name, value in fields.items():
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, (filename, data, ctype) in files.items():
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns (status, headers, body) for any status."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
