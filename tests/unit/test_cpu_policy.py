"""Every default sized from the CPU count counts the same cores: those this process may
run on (its affinity: a container's cpuset, ``taskset``), never the machine's
(shared/contract/settings.py ``available_cpus``). `cutout remove` counted ``os.cpu_count()``: on
one allowed core of two it ran two streams on it where the worker runs one."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.contract.options import parse_options
from shared.contract.settings import available_cpus, load_settings


@pytest.fixture
def one_core() -> Iterator[int]:
    allowed = os.sched_getaffinity(0)
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a machine with two cores or more")
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield 1
    finally:
        os.sched_setaffinity(0, allowed)


def test_the_worker_and_the_settings_count_the_allowed_cores(one_core: int) -> None:
    assert available_cpus() == one_core
    settings = load_settings({})
    assert settings.effective_concurrency == 1
    assert settings.effective_ort_threads == 1
    assert load_settings({"CUTOUT_ORT_THREADS": "3"}).threads_per_stream(4) == 3


def test_cutout_remove_counts_them_too(one_core: int, model_home: Path) -> None:
    from cutout.remove.run import open_engine

    args = argparse.Namespace(model_home=model_home, jobs=0, threads=0, quiet=True)
    settings = load_settings({"CUTOUT_MODEL_HOME": str(model_home)})
    engine, streams = open_engine(args, parse_options({"model": "u2netp"}), settings, 4)
    assert (streams, engine.threads) == (1, 1)
