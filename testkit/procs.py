"""Real processes and HTTP for the tests and the benchmarks: `cutout worker` and
`cutout api` subprocesses with their logs, a deadline poll, and a plain HTTP client.

Shared by tests/ and bench/ (bench never imports tests/). Nothing here starts a
server on import.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "cutout-test", "AWS_SECRET_ACCESS_KEY": "cutout-test-secret"}


def spawn(args: list[str], env: dict[str, str], log: object) -> subprocess.Popen[bytes]:
    """``python -m cutout <args>`` in its own session (so a stop reaches its children),
    stdout and stderr into ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "cutout", *args],
        env=env,
        stdout=log,  # type: ignore[arg-type]
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


def stop_group(proc: subprocess.Popen[bytes], grace: float = 30) -> None:
    """SIGTERM the process's session, SIGKILL it if it has not ended after ``grace``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class WorkerProcess:
    """A real `cutout worker` subprocess with its log file."""

    def __init__(self, env: dict[str, str], log_path: Path, args: list[str]) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115
        self.proc = spawn(["worker", *args], env, self.log)

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
        stop_group(self.proc)
        self.log.close()


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
        self.proc = spawn(["api"], dict(env, CUTOUT_PORT=str(self.port)), self.log)

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
        stop_group(self.proc)
        self.log.close()


@contextmanager
def running_api(env: dict[str, str], log_path: Path, timeout: float = 60) -> Iterator[ApiProcess]:
    """A real `cutout api` with ``env``, ready, for the block; stopped after it."""
    api = ApiProcess(env, log_path)
    try:
        api.wait_ready(timeout)
        yield api
    finally:
        api.stop()


def multipart(
    fields: dict[str, str],
    files: dict[str, tuple[str, bytes, str]],
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """Encode a multipart/form-data body with a chosen (or random) boundary; returns
    (body, content type)."""
    import secrets

    boundary = boundary or "cutout" + secrets.token_hex(8)
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
