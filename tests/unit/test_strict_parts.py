"""On CI (TESTS_STRICT=1) a test that skips for want of a part fails the run."""

from __future__ import annotations

import pytest

from tests.strict_parts import enforce


def skipped(reason: str) -> pytest.TestReport:
    return pytest.TestReport(
        "tests/x.py::test_x",
        ("tests/x.py", 1, "test_x"),
        {},
        "skipped",
        ("tests/x.py", 2, f"Skipped: {reason}"),
        "setup",
    )


@pytest.mark.parametrize(
    "reason", ["u2netp weights missing: run `cutout models fetch`", "chromium is not installed"]
)
def test_a_missing_part_fails_when_strict(monkeypatch: pytest.MonkeyPatch, reason: str) -> None:
    monkeypatch.setenv("TESTS_STRICT", "1")
    report = skipped(reason)
    enforce(report)
    assert report.failed
    assert reason in str(report.longrepr)


@pytest.mark.parametrize(
    "reason", ["evaluation data not present at /x/shared/eval", "no IPv6 loopback here"]
)
def test_missing_evaluation_data_or_ipv6_still_skips(
    monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    monkeypatch.setenv("TESTS_STRICT", "1")
    report = skipped(reason)
    enforce(report)
    assert report.skipped


def test_without_the_setting_a_skip_stays_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TESTS_STRICT", raising=False)
    report = skipped("chromium is not installed")
    enforce(report)
    assert report.skipped
