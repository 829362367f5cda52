"""CPU seconds of the quality score beside a plain exact job (bench/quality.py --cpu).

For each photo, interleaved over rounds in one process with one ONNX Runtime thread (a
worker's setting): the CPU seconds (``time.process_time``) of a plain exact u2net job
(``Engine.process``, default options: decode, model, rembg's mask, PNG), and of what
the score adds to it: ``basic`` (the features and the score from the job's own model input
and output) and ``full`` (the second opinion's inference, then the features and score).
Each photo keeps its best round per configuration; the ratios are sums over photos.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.contract.options import Options
from shared.contract.settings import load_settings
from worker.engine import Engine, decode_image, quality
from worker.engine.families import U2NetFamily


def _cpu(call: Callable[[], object]) -> float:
    started = time.process_time()
    call()
    return time.process_time() - started


def compare(paths: list[Path], rounds: int) -> dict[str, float]:
    engine = Engine(load_settings().model_home, threads=1)
    engine.warm(["u2net", quality.SECOND_MODEL])
    options = Options()

    def infer(model: str, batch: np.ndarray) -> np.ndarray:
        session = engine.session(model)
        return session.run(None, {session.get_inputs()[0].name: batch})[0]

    best: dict[str, list[float]] = {k: [np.inf] * len(paths) for k in ("plain", "basic", "full")}
    inputs = []
    for path in paths:
        data = path.read_bytes()
        small = U2NetFamily.shrink(decode_image(data))
        batch = U2NetFamily.normalise(small)
        inputs.append((data, small, batch, infer("u2net", batch)))
    engine.process(inputs[0][0], options)  # warm-up
    for _ in range(rounds):
        for i, (data, small, batch, output) in enumerate(inputs):

            def scored(s: np.ndarray = small, o: np.ndarray = output) -> None:
                quality.assess(o, s)

            def scored_full(
                s: np.ndarray = small, b: np.ndarray = batch, o: np.ndarray = output
            ) -> None:
                quality.assess(o, s, second=quality.second_opinion(b, infer))

            def job(data: bytes = data) -> None:
                engine.process(data, options)

            basic = _cpu(scored)
            costs = {
                # a job scores at the basic level by default: today's job without it
                "plain": _cpu(job) - basic,
                "basic": basic,
                "full": _cpu(scored_full),
            }
            for key, value in costs.items():
                best[key][i] = min(best[key][i], value)
    plain, basic, full = (float(np.sum(best[k])) for k in ("plain", "basic", "full"))
    result = {
        "photos": len(paths),
        "plain_s_per_photo": plain / len(paths),
        "basic_extra_ms_per_photo": 1000 * basic / len(paths),
        "full_extra_ms_per_photo": 1000 * full / len(paths),
        "basic_ratio": (plain + basic) / plain,
        "full_ratio": (plain + full) / plain,
    }
    for key, value in result.items():
        print(f"{key:28s} {value:.4f}")
    return result
