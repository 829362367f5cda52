"""Fixtures shared by every tier. Servers are real: redis-server and SeaweedFS ``weed mini``.

Tiers (each has its own conftest with its rules):
- tests/unit: pure logic, no servers, no model weights. Fast.
- tests/integration: real Redis, real SeaweedFS S3, real Celery worker processes, the
  real model weights (CUTOUT_MODEL_HOME). Servers are started here on free ports, with
  their data in a temporary folder, and stopped at the end of the session.
- tests/e2e: the running service through HTTP, the web page in Chromium.

Failing image comparisons save their images under ``test-artifacts/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.openapi_conformance"]  # every API response checked against /openapi.json

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT.parent / "shared" / "eval"
ARTIFACTS = ROOT / "test-artifacts"

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "cutout-test", "AWS_SECRET_ACCESS_KEY": "cutout-test-secret"}


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    """../shared/eval when present; the test is skipped otherwise."""
    if not EVAL_DIR.is_dir():
        pytest.skip(f"evaluation data not present at {EVAL_DIR}")
    return EVAL_DIR


@pytest.fixture(scope="session")
def model_home() -> Path:
    from shared.settings import load_settings

    return load_settings().model_home


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (AOF on, noeviction) for the whole session."""
    from cutout.stack import free_port, redis_ready, redis_server

    port = free_port()
    server = redis_server(tmp_path_factory.mktemp("redis"), port).start()
    try:
        server.wait_until(redis_ready(port), 30)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()


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
