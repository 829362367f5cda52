"""Fixtures shared by every tier. Servers are real: redis-server and SeaweedFS ``weed mini``.

Tiers are folders (each has its own conftest with its rules); a test is marked with its
folder's tier here, so ``-m unit`` / ``-m "not integration"`` select by folder and a new
file is marked without doing anything:
- tests/unit (``unit``): pure logic, no servers, no model weights. Fast. Its conftest
  refuses the server fixtures and the start of a server process.
- tests/integration (``integration``): real Redis, real SeaweedFS S3, real Celery worker
  processes, the real model weights (CUTOUT_MODEL_HOME). Servers are started here on
  free ports, with their data in a temporary folder, and stopped at the end of the
  session.
- tests/e2e (``e2e``): the running service through HTTP, the web page in Chromium.
- tests/faults (``faults``): a fresh stack per test, and a fault injected into it.

Redis databases of the session's server are handed out by ``redis_dbs`` (never by
number in a test). The terminal summary ends with the time spent in each tier.

Failing image comparisons save their images under ``test-artifacts/``.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testkit.procs import ROOT, S3_CREDENTIALS

pytest_plugins = [
    "tests.openapi_conformance",  # every API response checked against /openapi.json
    "tests.strict_parts",  # on CI (TESTS_STRICT=1) a skip for a missing part fails
]
EVAL_DIR = ROOT.parent / "shared" / "eval"
ARTIFACTS = ROOT / "test-artifacts"
# the session's redis-server has this many databases; db 0 is the shared one (the
# session's `store`, `worker` and `api_server`), the rest are handed out by `redis_dbs`
TEST_DATABASES = 64

__all__ = ["ARTIFACTS", "EVAL_DIR", "ROOT", "S3_CREDENTIALS", "RedisDatabases"]


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    """../shared/eval when present; the test is skipped otherwise."""
    if not EVAL_DIR.is_dir():
        pytest.skip(f"evaluation data not present at {EVAL_DIR}")
    return EVAL_DIR


@pytest.fixture(scope="session")
def model_home() -> Path:
    from shared.contract.settings import load_settings

    return load_settings().model_home


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@contextmanager
def running_redis(folder: Path, databases: int | None = None) -> Iterator[str]:
    """A real redis-server (AOF on, noeviction) on a free port while the block runs; its
    database 0's URL."""
    from cutout.stack import free_port, redis_ready, redis_server

    port = free_port()
    server = redis_server(folder, port, databases=databases).start()
    try:
        server.wait_until(redis_ready(port), 30)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (AOF on, noeviction) for the whole session."""
    with running_redis(tmp_path_factory.mktemp("redis"), TEST_DATABASES) as url:
        yield url


class RedisDatabases:
    """Hands out the session server's databases 1, 2, ... each to one taker, flushed.

    A module whose worker consumes a database, or whose test looks at every key of one
    (a sweep, a listing), takes its own here instead of naming a number: two modules
    can never share one by accident.
    """

    def __init__(self, redis_url: str, count: int) -> None:
        self.base = redis_url.rsplit("/", 1)[0]
        self.count = count
        self.next = 1

    def take(self) -> str:
        import redis

        if self.next >= self.count:
            raise RuntimeError(f"all {self.count} Redis databases are taken: raise TEST_DATABASES")
        url = f"{self.base}/{self.next}"
        self.next += 1
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
        return url


@pytest.fixture(scope="session")
def redis_dbs(redis_url: str) -> RedisDatabases:
    """The allocator of the session server's Redis databases (``redis_dbs.take()``)."""
    return RedisDatabases(redis_url, TEST_DATABASES)


@pytest.fixture(scope="module")
def module_db(redis_dbs: RedisDatabases) -> str:
    """A Redis database of this test module's own (flushed), as a URL: for a module whose
    worker consumes it, or whose tests look at every key in it (a sweep, a listing)."""
    return redis_dbs.take()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real SeaweedFS S3 (``weed mini``) with bucket ``cutout-test``."""
    from cutout.stack import WeedPorts, s3_ready, weed_server

    env = dict(os.environ, **S3_CREDENTIALS)
    ports = WeedPorts.pick()
    server = weed_server(tmp_path_factory.mktemp("s3"), ports, "cutout-test", env).start()
    endpoint = f"http://127.0.0.1:{ports.s3}"
    try:
        server.wait_until(s3_ready(endpoint, "cutout-test", env), 60)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def service_env(redis_url: str, s3_endpoint: str, model_home: Path) -> dict[str, str]:
    """Environment for a process (API or worker) that talks to the session's servers."""
    env = dict(os.environ)
    env.update(S3_CREDENTIALS)
    env.update(
        {
            "CUTOUT_REDIS_URL": redis_url,
            "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
            "CUTOUT_S3_BUCKET": "cutout-test",
            "CUTOUT_MODEL_HOME": str(model_home),
            "CUTOUT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
            "CUTOUT_LOG_FORMAT": "text",
            # workers load the int8 model only in the tests about it (faster starts)
            "CUTOUT_FAST": "off",
        }
    )
    return env


@pytest.fixture(scope="session")
def s3_credentials(monkeypatch_session: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in S3_CREDENTIALS.items():
        monkeypatch_session.setenv(name, value)
    return S3_CREDENTIALS


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


# -- tiers by folder ------------------------------------------------------------------

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e", "faults")


def tier_of(path: str | os.PathLike[str]) -> str | None:
    """The tier of a test file: the folder under tests/ it is in (None for others)."""
    try:
        parts = Path(path).resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item.path)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


class TierTimes:
    """Wall time per tier: setup + call + teardown of its tests, and their outcomes."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.outcomes: defaultdict[str, dict[str, str]] = defaultdict(dict)
        self.started = time.monotonic()

    def add(self, report: pytest.TestReport) -> None:
        tier = tier_of(ROOT / report.nodeid.split("::", 1)[0]) or "other"
        self.seconds[tier] += report.duration
        seen = self.outcomes[tier]
        if report.failed:
            seen[report.nodeid] = "failed"
        elif report.skipped and seen.get(report.nodeid) != "failed":
            seen[report.nodeid] = "skipped"
        else:
            seen.setdefault(report.nodeid, "passed")

    def lines(self) -> list[str]:
        out = []
        for tier in sorted(self.seconds, key=lambda t: TIERS.index(t) if t in TIERS else 99):
            counts = Counter(self.outcomes[tier].values())
            detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
            out.append(
                f"{tier:<12} {sum(counts.values()):>5} tests {self.seconds[tier]:>9.1f} s"
                f"  ({detail})"
            )
        out.append(f"{'session':<12} {'':>11} {time.monotonic() - self.started:>9.1f} s wall")
        return out


TIER_TIMES = TierTimes()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    TIER_TIMES.add(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIER_TIMES.seconds:
        return
    # CI's log shows where the time goes; a tier's first test carries the start of the
    # session servers it is the first to need
    terminalreporter.write_sep("=", "time per tier (setup + call + teardown)")
    for line in TIER_TIMES.lines():
        terminalreporter.write_line(line)
