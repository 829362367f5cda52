"""Does batched inference help on CPU? One session, the same images, batch 1 vs batch N.

    python bench/batching.py [--models u2netp u2net] [--batch 4] [--threads 1 2] [--rounds 3]

For each model and ONNX Runtime thread count it runs ``--batch`` different 320×320 model
inputs as N calls of batch 1 and as one call of batch N, interleaved for ``--rounds``
rounds, and prints the best images/s of each and their ratio (best of rounds: the machine
is shared, so the minimum is the least disturbed). Preprocessing is outside the timing:
this is the inference call only, where batching could gain.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.contract.settings import load_settings
from worker.engine.batching import symbolic_batch
from worker.engine.models import ensure_model
from worker.engine.session import create_session


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["u2netp", "u2net"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = load_settings().model_home
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((args.batch, 3, 320, 320)).astype(np.float32)
    print(
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    print(f"model   threads  batch1 img/s  batch{args.batch} img/s  ratio")
    for model in args.models:
        graph = symbolic_batch(ensure_model(model, home))
        for threads in args.threads:
            session = create_session(graph, threads=threads)
            name = session.get_inputs()[0].name
            session.run(None, {name: inputs})  # warm-up, untimed
            one, many = [], []
            for _ in range(args.rounds):
                t = time.perf_counter()
                for i in range(args.batch):
                    session.run(None, {name: inputs[i : i + 1]})
                one.append(time.perf_counter() - t)
                t = time.perf_counter()
                session.run(None, {name: inputs})
                many.append(time.perf_counter() - t)
            a, b = args.batch / min(one), args.batch / min(many)
            print(f"{model:<7} {threads:>7}  {a:>12.2f}  {b:>12.2f}  {b / a:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
