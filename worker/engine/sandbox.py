"""The custom-model sandbox: tenants' ONNX graphs run in a runner process with caps.

A custom model (``POST /v1/models``) is any graph a keyed tenant uploads, and every
worker runs it. In the pool child, a graph that ``Expand``\\ s its input to 9.8 GB took
the child (and the host) that much memory, and a ``Loop`` of matrix products held it past
every time limit: Celery's soft limit is a signal that cannot interrupt native code, so
the run was hard-killed, re-queued and counted as a lost worker three times. So in a
worker a custom model never runs in the pool child. Each pool child (each thread of the
threads pool) starts one runner (worker/engine/sandbox_runner.py: a fresh interpreter,
``subprocess`` without fork tricks), on the first custom-model job, and keeps it:

- **memory**: the runner caps its own address space (``RLIMIT_AS``) at
  ``CUTOUT_CUSTOM_MODEL_MEMORY`` before anything else, so an allocation past it fails in
  ONNX Runtime ("Failed to allocate memory") and the job fails with
  ``model_memory_exceeded``; the runner is then replaced (a fresh one on the next job).
  The cap covers the whole runner: Python and ONNX Runtime (~0.2 GB) and the custom
  models it keeps loaded (at most ``CUTOUT_CUSTOM_MODEL_SESSIONS``). A model that fails
  while others are loaded is tried once more in a fresh runner alone, so one tenant's
  loaded models never make another's fail.
- **time**: the pool child waits at most ``CUTOUT_CUSTOM_MODEL_TIMEOUT`` for a load and
  run, then kills the runner (SIGKILL: native code stops too) and fails the job with
  ``processing_timeout``.
- **crash**: a runner that dies (a segfault in a kernel, the kernel's OOM killer) fails
  the job with ``model_failed``; a model that cannot load (an operator of an unknown
  domain, weights in external data) with ``invalid_model``; a run that fails otherwise, or
  gives another output than U²-Net's, with ``model_failed``.

None of these is retried and none is a lost worker: the pool child only waited, it
serves the next job. A stop of the worker (SIGTERM) or Celery's soft limit raised while
it waits kills the runner the same way. The runner gets the input (1×3×320×320
float32) and sends back only the first output, checked against the expected shape and
never larger: JSON headers and raw bytes, nothing unpickled
(worker/engine/sandbox_wire.py). It inherits no credentials: only what Python needs of
the worker's environment.

Built-in models (u2net, u2netp, fast mode) run in the pool child as before; ``cutout
remove`` and ``cutout eval`` (a user's own models) run custom ones in-process too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import InvalidModel, ModelFailed, ModelMemoryExceeded, ProcessingTimeout
from worker.engine import sandbox_wire as wire
from worker.engine.families import U2NetFamily

log = logging.getLogger("cutout.worker")

#: how long a runner may take to start (its imports: ~1 s; not the model's time)
START_TIMEOUT = 60.0
#: the runner refuses a request larger than this (256 inputs of 1×3×320×320 float32)
MAX_REQUEST = 256 * 3 * 320 * 320 * 4
# libraries that would start a thread per core (each with its own stack and malloc
# arena, all inside the address-space cap) run on one
_RUNNER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
# what the runner inherits of the worker's environment: enough for Python to start and
# import the checkout, never the worker's credentials (S3 keys, Redis URLs, API keys)
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PYTHONPATH", "PYTHONHOME")


def runner_env() -> dict[str, str]:
    """The runner's environment: :data:`_INHERITED` from this process, and :data:`_RUNNER_ENV`."""
    return {
        **{name: os.environ[name] for name in _INHERITED if name in os.environ},
        **_RUNNER_ENV,
    }


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """``memory``: the runner's address space in bytes (0: no cap); ``timeout``: seconds a
    load and run may take; ``threads``: ONNX Runtime's intra-op threads; ``sessions``:
    custom models a runner keeps loaded."""

    memory: int
    timeout: float
    threads: int = 1
    sessions: int = 4


class _Expired(Exception):
    """The wall-clock cap passed while waiting on the runner."""


class _Gone(Exception):
    """The runner closed its pipes: it exited or was killed."""


class _Runner:
    """One runner process and its pipes (non-blocking, waited on with ``poll``)."""

    def __init__(self, limits: SandboxLimits) -> None:
        config = {
            "parent": os.getpid(),
            "memory": limits.memory,
            "threads": limits.threads,
            "sessions": limits.sessions,
            "max_payload": MAX_REQUEST,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.engine.sandbox_runner", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=runner_env(),
            close_fds=True,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.to_runner = self.proc.stdin.fileno()
        self.from_runner = self.proc.stdout.fileno()
        os.set_blocking(self.to_runner, False)
        os.set_blocking(self.from_runner, False)
        #: keys of the models the runner has loaded (from its last answer)
        self.loaded: list[str] = []

    def _wait(self, fd: int, event: int, deadline: float) -> None:
        left = deadline - time.monotonic()
        poller = select.poll()
        poller.register(fd, event)
        if left <= 0 or not poller.poll(left * 1000):
            raise _Expired

    def _send(self, parts: list[bytes | memoryview], deadline: float) -> None:
        for part in parts:
            view = memoryview(part).cast("B")
            while view:
                self._wait(self.to_runner, select.POLLOUT, deadline)
                try:
                    view = view[os.write(self.to_runner, view) :]
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    raise _Gone from None

    def _receive(self, size: int, deadline: float) -> bytearray:
        buf = bytearray(size)
        view, got = memoryview(buf), 0
        while got < size:
            self._wait(self.from_runner, select.POLLIN, deadline)
            try:
                n = os.readv(self.from_runner, [view[got:]])
            except BlockingIOError:
                continue
            if n == 0:
                raise _Gone
            got += n
        return buf

    def wait_ready(self, deadline: float) -> None:
        """Read the runner's ``ready`` frame (sent once its imports are done)."""
        meta, _ = wire.sizes(bytes(self._receive(wire.HEAD.size, deadline)), 0)
        if not wire.header(bytes(self._receive(meta, deadline))).get("ready"):
            raise wire.WireError("the runner's first frame is not 'ready'")

    def exchange(
        self, request: dict[str, Any], payload: np.ndarray, answer_bytes: int, deadline: float
    ) -> tuple[dict[str, Any], bytearray]:
        """Send one request and read its answer (a payload of at most ``answer_bytes``)."""
        self._send(wire.frame(request, payload.data.cast("B")), deadline)
        meta, size = wire.sizes(bytes(self._receive(wire.HEAD.size, deadline)), answer_bytes)
        answer = wire.header(bytes(self._receive(meta, deadline)))
        data = self._receive(size, deadline)
        self.loaded = [str(k) for k in answer.get("loaded", [])]
        return answer, data

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> str:
        """Kill the runner (if it still runs) and reap it; how it ended, in words."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"


class Sandbox:
    """Runs custom models in runner processes (one per thread) under :class:`SandboxLimits`."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._local = threading.local()
        #: runners started (a replaced runner counts again): for the logs and benchmarks
        self.started = 0

    def _runner(self) -> _Runner:
        runner: _Runner | None = getattr(self._local, "runner", None)
        if runner is None or not runner.alive():
            if runner is not None:
                runner.kill()
            runner = _Runner(self.limits)
            try:
                runner.wait_ready(time.monotonic() + START_TIMEOUT)
            except BaseException as exc:
                ended = runner.kill()
                if isinstance(exc, _Expired | _Gone | wire.WireError):
                    log.error("the custom-model sandbox did not start", extra={"ended": ended})
                    raise ModelFailed(
                        f"the sandbox for custom models did not start ({ended})"
                    ) from None
                raise
            self._local.runner = runner
            self.started += 1
        return runner

    def discard(self) -> str | None:
        """Kill this thread's runner (the next run starts a fresh one); how it ended."""
        runner: _Runner | None = getattr(self._local, "runner", None)
        self._local.runner = None
        return runner.kill() if runner is not None else None

    def close(self) -> None:
        self.discard()

    def run(
        self, name: str, key: str, materialize: Callable[[], Path], batch: np.ndarray
    ) -> np.ndarray:
        """The first output of model ``name`` (file sha256 ``key``) for ``batch``.

        Raises ProcessingTimeout, ModelMemoryExceeded, InvalidModel, ModelFailed, and what
        ``materialize`` raises (it runs here, outside the cap: fetching is not the model's).
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        expect = (batch.shape[0], 1, *batch.shape[2:])
        runner = self._runner()
        path = None if key in runner.loaded else str(materialize())
        deadline = time.monotonic() + self.limits.timeout
        answer, data = self._ask(name, runner, key, path, batch, expect, deadline)
        if answer.get("kind") == "missing":  # dropped since its last answer: load it now
            answer, data = self._ask(name, runner, key, str(materialize()), batch, expect, deadline)
        if answer.get("kind") == "memory" and any(k != key for k in runner.loaded):
            # other models take part of the cap: try once alone, in a fresh runner
            self.discard()
            runner = self._runner()
            answer, data = self._ask(name, runner, key, str(materialize()), batch, expect, deadline)
        return self._outcome(name, answer, data, expect)

    def _ask(
        self,
        name: str,
        runner: _Runner,
        key: str,
        path: str | None,
        batch: np.ndarray,
        expect: tuple[int, ...],
        deadline: float,
    ) -> tuple[dict[str, Any], bytearray]:
        request = {"key": key, "path": path, "shape": list(batch.shape), "expect": list(expect)}
        answer_bytes = int(np.prod(expect)) * 4
        try:
            return runner.exchange(request, batch, answer_bytes, deadline)
        except _Expired:
            self.discard()
            log.warning("custom model over its time cap: runner killed", extra={"model": name})
            raise ProcessingTimeout(
                f"model {name} did not finish within {self.limits.timeout:g} s, the time a "
                "custom model may run"
            ) from None
        except (_Gone, wire.WireError):
            ended = self.discard()
            log.warning("custom model's runner died", extra={"model": name, "ended": ended})
            raise ModelFailed(f"model {name} crashed the process running it ({ended})") from None
        except BaseException:
            # a stop of the worker, Celery's soft time limit: the runner is mid-request
            self.discard()
            raise

    def _outcome(
        self, name: str, answer: dict[str, Any], data: bytearray, expect: tuple[int, ...]
    ) -> np.ndarray:
        if answer.get("ok"):
            return np.frombuffer(data, dtype=np.float32).reshape(expect)
        kind = answer.get("kind")
        message = str(answer.get("message") or "")
        if kind == "memory":
            self.discard()  # a fresh runner after an allocation failure
            asked = answer.get("asked")
            extra = f" (it asked for {_size(asked)} at once)" if asked else ""
            raise ModelMemoryExceeded(
                f"model {name} needs more than the {self.limits.memory / 2**30:.2f} GiB a "
                f"custom model may use{extra}"
            )
        if kind == "invalid":
            raise InvalidModel(f"model {name} cannot be loaded: {message}")
        raise ModelFailed(f"model {name} failed: {message}")


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


class Sandboxed:
    """A custom model the engine runs through a :class:`Sandbox` (its ``family`` as the
    built-ins', so pre- and post-processing are unchanged)."""

    family = U2NetFamily

    def __init__(self, sandbox: Sandbox, name: str, key: str, materialize: Callable[[], Path]):
        self.sandbox = sandbox
        self.name = name
        self.key = key
        self.materialize = materialize

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.sandbox.run(self.name, self.key, self.materialize, batch)
