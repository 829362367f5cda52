"""Benchmark: what the custom-model sandbox costs per job, beside the same model in process.

    python bench/sandbox.py [--models u2netp u2net] [--jobs 20] [--rounds 2] [--size 800]

Each of ``--models`` (a pinned built-in file) is served as a *custom* model twice, in one
run: ``in-process`` (an Engine without a sandbox: what a worker did before, and what
``cutout remove`` does) and ``sandbox`` (an Engine with worker/engine/sandbox.py, as a
worker runs it). Each configuration gets a fresh Engine; its first job (the cold one:
for the sandbox the runner's start, and the model's load, in both) is timed apart, then
``--jobs`` jobs on one generated photo (``--size`` px, PNG in, PNG out, default
options). Rounds are interleaved and each configuration reports its best round.

Printed per model and configuration: CPU seconds per job (user + system of this
process, plus the runner's for the sandbox: all the machine pays), wall seconds per
job, the cold first job's CPU and wall seconds, and the runner's resident memory after
the jobs. The sandbox's overhead is the difference of the CPU columns. The machine should
be otherwise idle for absolute numbers; the differences come from the same run.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.contract.options import parse_options  # noqa: E402
from shared.contract.settings import load_settings  # noqa: E402
from worker.engine import Engine  # noqa: E402
from worker.engine.custom import CustomModels  # noqa: E402
from worker.engine.sandbox import Sandbox, SandboxLimits  # noqa: E402


class Pinned(CustomModels):
    """Serves the built-in file ``path`` under the custom name ``custom``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lookup(self, name: str) -> tuple[str, Callable[[], Path]]:
        return self.path.stem, lambda: self.path


def photo(size: int) -> bytes:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size, 3), 220, np.uint8)
    disc = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2
    img[disc] = rng.integers(0, 255, (int(disc.sum()), 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, "PNG")
    return out.getvalue()


def cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def run(path: Path, sandboxed: bool, jobs: int, data: bytes) -> dict[str, Any]:
    box = Sandbox(SandboxLimits(memory=2 * 2**30, timeout=300)) if sandboxed else None
    engine = Engine(path.parent, threads=1, custom=Pinned(path), sandbox=box)
    options = parse_options({"model": "custom"}, models=lambda name: name == "custom")

    def pids() -> list[int]:
        runner = getattr(box._local, "runner", None) if box else None
        return [psutil.Process().pid] + ([runner.proc.pid] if runner else [])

    # the runner's CPU before it existed is 0: measure the cold job around its start
    c0, w0 = cpu([psutil.Process().pid]), time.perf_counter()
    engine.process(data, options)
    cold_cpu, cold_wall = cpu(pids()) - c0, time.perf_counter() - w0
    c1, w1 = cpu(pids()), time.perf_counter()
    for _ in range(jobs):
        engine.process(data, options)
    out = {
        "cpu": (cpu(pids()) - c1) / jobs,
        "wall": (time.perf_counter() - w1) / jobs,
        "cold_cpu": cold_cpu,
        "cold_wall": cold_wall,
        "runner_rss": psutil.Process(pids()[1]).memory_info().rss if box else 0,
    }
    if box is not None:
        box.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["u2netp", "u2net"])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=800)
    args = parser.parse_args(argv)
    home = load_settings().model_home
    data = photo(args.size)
    print(f"{args.jobs} jobs per round, {args.size}x{args.size} PNG, 1 ONNX Runtime thread")
    print("model   config      CPU s/job  wall s/job  cold CPU s  cold wall s  runner RSS")
    for model in args.models:
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for name, sandboxed in (("in-process", False), ("sandbox", True)):
                got = run(home / f"{model}.onnx", sandboxed, args.jobs, data)
                if name not in best or got["cpu"] < best[name]["cpu"]:
                    best[name] = got
        for name, got in best.items():
            rss = f"{got['runner_rss'] / 1e6:.0f} MB" if got["runner_rss"] else "-"
            print(
                f"{model:7s} {name:10s} {got['cpu']:10.3f} {got['wall']:11.3f} "
                f"{got['cold_cpu']:11.2f} {got['cold_wall']:12.2f}  {rss}"
            )
        extra = best["sandbox"]["cpu"] - best["in-process"]["cpu"]
        print(f"{model:7s} sandbox overhead: {extra * 1000:+.1f} ms CPU per job")


if __name__ == "__main__":
    main()
