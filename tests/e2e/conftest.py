"""E2E tier: the running service through HTTP, and the web page in a real browser.

Rules:
- Everything is real: redis-server and SeaweedFS from tests/conftest.py, `cutout api`
  (gunicorn) and `cutout worker` subprocesses, the pinned model weights. Nothing is
  mocked; a test may only *hold* or *drop* the page's own requests (Playwright routes)
  to show a state (queued, connection lost) that is otherwise too quick to see.
- The browser is Debian's `chromium` (or CUTOUT_CHROMIUM) driven by the `playwright`
  Python package through ``executable_path``, headless, no sandbox. Never run
  `playwright install` (no browser downloads). Without chromium, playwright or the model
  weights the tier is skipped with the reason.
- Traffic stays on 127.0.0.1: chromium runs without background networking, component
  updates, sync or QUIC, and the page loads nothing from other hosts (its CSP says so).
- Every state a test reaches is saved as a screenshot under test-artifacts/e2e/
  (git-ignored); image comparisons that fail save both images there too.
- No timed assertions: timeouts only end a hung test. Use u2netp unless the model
  matters.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS
from tests.integration.conftest import ApiProcess, WorkerProcess, running_api

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
API_KEY = "e2e-page-key-0123456789abcdef"
E2E_ARTIFACTS = ARTIFACTS / "e2e"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CUTOUT_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    return found


@pytest.fixture(scope="session")
def shots() -> Path:
    """test-artifacts/e2e, where every test saves its screenshots."""
    E2E_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return E2E_ARTIFACTS


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's package) for the session."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed (pip install)"
    )
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium, or set CUTOUT_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def weights(model_home: Path) -> Path:
    missing = [m for m in ("u2net", "u2netp") if not (model_home / f"{m}.onnx").is_file()]
    if missing:
        pytest.skip(
            f"model weights missing in {model_home}: {', '.join(missing)} (cutout models fetch)"
        )
    return model_home


@pytest.fixture(scope="session")
def e2e_worker(
    service_env: dict[str, str], weights: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One real `cutout worker` (both models) for the tier."""
    env = dict(
        service_env,
        CUTOUT_MODELS="u2netp,u2net",
        CUTOUT_WORKER_CONCURRENCY="1",
        CUTOUT_ORT_THREADS="1",
    )
    worker = WorkerProcess(env, tmp_path_factory.mktemp("e2e-worker") / "worker.log", [])
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def api_server(
    service_env: dict[str, str],
    e2e_worker: WorkerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiProcess]:
    """`cutout api` on a free loopback port, without keys (as `cutout up` runs it)."""
    with running_api(service_env, tmp_path_factory.mktemp("e2e-api") / "api.log") as api:
        yield api


@pytest.fixture(scope="session")
def api_server_with_keys(
    service_env: dict[str, str],
    e2e_worker: WorkerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiProcess]:
    """A second API process on the same servers with API keys on."""
    env = dict(service_env, CUTOUT_API_KEYS=f"e2e:{API_KEY}")
    with running_api(env, tmp_path_factory.mktemp("e2e-api-keys") / "api.log") as api:
        yield api


class PageSession:
    """A page plus what it did: requests and console errors."""

    def __init__(self, page: Any, shots: Path, prefix: str) -> None:
        self.page = page
        self.shots = shots
        self.prefix = prefix
        self.requests: list[Any] = []
        self.failed: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.method} {r.url}"))
        page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.console_errors.append(f"pageerror: {e}"))

    def shot(self, state: str, full_page: bool = True) -> Path:
        path = self.shots / f"{self.prefix}-{state}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def calls(self, method: str, fragment: str) -> list[Any]:
        return [r for r in self.requests if r.method == method and fragment in r.url]


@pytest.fixture
def open_page(
    browser: Any, shots: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., PageSession]]:
    """Open the page at a URL in a fresh context: ``open_page(url, width=, height=)``."""
    contexts: list[Any] = []

    def open_(
        url: str, width: int = 1280, height: int = 860, prefix: str | None = None
    ) -> PageSession:
        context = browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        context.set_default_timeout(120_000)
        contexts.append(context)
        page = context.new_page()
        session = PageSession(page, shots, prefix or request.node.name.removeprefix("test_"))
        page.goto(url)
        page.wait_for_function("document.readyState === 'complete'")
        return session

    yield open_
    for context in contexts:
        context.close()
