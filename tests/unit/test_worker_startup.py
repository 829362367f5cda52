"""The worker's start-up policy (worker/startup.py): which pool and how many processes or
threads a setting and a flag give, and what CUDA and batching refuse or warn about. The
real starts are tests/integration/test_gpu_refusal.py and test_batching_worker.py."""

from __future__ import annotations

import pytest

from shared.contract.settings import Settings
from worker.startup import Pool, StartRefused, celery_argv, choose_pool


def chosen(pool: str | None = None, concurrency: int = 0, **settings: object) -> Pool:
    warnings: list[str] = []
    result = choose_pool(Settings(**settings), pool, concurrency, warnings.append)  # type: ignore[arg-type]
    assert warnings == []
    return result


def test_the_default_pool_follows_the_device_and_the_batch_size() -> None:
    assert chosen(worker_concurrency=3) == Pool("prefork", 3)
    assert chosen(device="cuda") == Pool("solo", 1)
    # batching: threads meet at inference, one per job of a batch at least
    assert chosen(batch_size=4, worker_concurrency=2) == Pool("threads", 4)
    assert chosen(batch_size=4, worker_concurrency=6) == Pool("threads", 6)
    assert chosen(batch_size=4, device="cuda") == Pool("threads", 4)


def test_flags_win_over_the_settings() -> None:
    assert chosen("solo", 5, worker_concurrency=3) == Pool("solo", 5)
    assert chosen("threads", 2, device="cuda") == Pool("threads", 2)
    # solo runs one process whatever the size says
    argv = celery_argv(Settings(), "interactive,bulk", Pool("solo", 5))
    assert argv[argv.index("--concurrency") + 1] == "1"
    assert argv[argv.index("--queues") + 1] == "interactive,bulk"
    argv = celery_argv(Settings(log_level="debug"), "bulk", Pool("prefork", 5))
    assert argv[argv.index("--concurrency") + 1] == "5"
    assert argv[argv.index("--loglevel") + 1] == "DEBUG"


def test_cuda_with_prefork_is_refused_as_a_usage_error() -> None:
    with pytest.raises(StartRefused) as caught:
        choose_pool(Settings(device="cuda"), "prefork")
    assert caught.value.exit_code == 2
    assert str(caught.value) == "CUDA does not survive fork; use --pool solo or threads"


def test_batching_with_another_pool_warns_and_runs_one_job_per_call() -> None:
    warnings: list[str] = []
    pool = choose_pool(Settings(batch_size=4, worker_concurrency=2), "prefork", 0, warnings.append)
    assert pool == Pool("prefork", 2)
    assert warnings == ["CUTOUT_BATCH_SIZE needs --pool threads; prefork runs one job per call"]
