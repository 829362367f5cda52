"""Unit tier: pure logic, no servers, no model weights.

Rules: nothing here starts redis-server, SeaweedFS (``weed``) or a `cutout worker` /
`cutout api` / `cutout up` process, nor needs one. Two guards hold the rule, so that
``python -m pytest tests/unit`` (or ``-m unit``) runs on a machine with none of them:
- the session's server fixtures (``redis_url``, ``s3_endpoint`` and what builds on
  them: ``service_env``, ``redis_dbs``) fail a unit test that asks for one;
- starting such a process (``subprocess.Popen``, so ``subprocess.run`` too) fails the
  test that tries, naming what it started. Other subprocesses (a fresh interpreter, pip)
  are allowed.
A test that needs a server belongs in tests/integration.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

SERVER_PROGRAMS = {"redis-server", "weed"}
SERVICE_COMMANDS = {"worker", "api", "up"}


class ServerInUnitTier(AssertionError):
    """A unit test tried to start a server process."""


def server_started_by(args: Any) -> str | None:
    """What server ``args`` (as given to Popen) would start, or None."""
    if isinstance(args, (str, bytes, os.PathLike)):
        text = os.fsdecode(args)
        argv = shlex.split(text) if " " in text else [text]
    elif isinstance(args, Sequence):
        argv = [os.fsdecode(a) for a in args]
    else:
        return None
    if not argv:
        return None
    program = Path(argv[0]).name
    if program in SERVER_PROGRAMS:
        return program
    rest = argv[1:]
    if program == "cutout" and rest[:1] and rest[0] in SERVICE_COMMANDS:
        return f"cutout {rest[0]}"
    for i, arg in enumerate(rest[:-2]):
        if arg == "-m" and rest[i + 1] == "cutout" and rest[i + 2] in SERVICE_COMMANDS:
            return f"cutout {rest[i + 2]}"
    return None


@pytest.fixture(autouse=True)
def _no_server_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    original = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        started = server_started_by(args)
        if started is not None:
            raise ServerInUnitTier(
                f"a unit test started {started}: servers belong in tests/integration"
            )
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


REFUSED = "the unit tier starts no server: `{}` belongs in tests/integration"


@pytest.fixture(scope="session")
def redis_url() -> str:
    pytest.fail(REFUSED.format("redis_url"))


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    pytest.fail(REFUSED.format("s3_endpoint"))
