"""`cutout api` and `cutout worker` without CUTOUT_REDIS_URL exit 2 naming it, in the words
of any wrong setting, before anything starts (shared/contract/settings.py ``NEEDS_REDIS``; the
in-process half is tests/unit/test_required_settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.contract.settings import PREFIX
from tests.conftest import ROOT

# no server answers here: nothing may connect before the check
NOWHERE = {"CUTOUT_S3_ENDPOINT_URL": "http://127.0.0.1:1"}
WHO = {"api": "the API", "worker": "the worker"}


def start(command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update(NOWHERE)
    return subprocess.run(
        [sys.executable, "-m", "cutout", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("process", ["api", "worker"])
def test_cutout_api_and_worker_exit_2_naming_the_variable(process: str) -> None:
    """The same words and exit code as any wrong setting, before anything starts (the
    API's gunicorn process failed to boot with a traceback; the worker said it its own
    way)."""
    done = start(process)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "cutout: invalid settings:",
        (
            f"  CUTOUT_REDIS_URL: required by {WHO[process]} (Redis for jobs and the queue); "
            "`cutout up` sets it for you"
        ),
    ]
