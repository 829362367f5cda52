"""A pytest plugin: with ``TESTS_STRICT=1`` (``.ci/run`` sets it), a test that
skips for want of a part fails instead.

Locally a test skips when its part is missing (the model weights, Chromium, Node's
remove.bg client, a redis-server built with TLS, the fast extra), so a partial checkout
still runs what it can. CI installs every one of them, so a skip there means a test that
did not run while the run looked green. Two reasons stay skips: the evaluation data
(the team's photos beside the checkout, which a clean clone may lack) and a machine
without an IPv6 loopback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import EVAL_DIR

# not a CUTOUT_ name: the commands warn about every CUTOUT_ variable that is no setting
ENV = "TESTS_STRICT"
# what a skip may still be for: the evaluation data (its folder named in the reason)
# and the machine's network
ALLOWED = ("evaluation data", "IPv6", str(EVAL_DIR))


def strict() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def reason_of(longrepr: Any) -> str:
    """A skip report's reason (pytest keeps it as (path, line, 'Skipped: reason'))."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def allowed(reason: str) -> bool:
    return any(word in reason for word in ALLOWED)


def enforce(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not strict() or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = reason_of(report.longrepr)
    if not allowed(reason):
        report.outcome = "failed"
        report.longrepr = f"{ENV} is set, so this skip fails the run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    enforce(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    enforce(outcome.get_result())  # type: ignore[attr-defined]
