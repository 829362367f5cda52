"""Run one job through the engine in this fresh process and print what it added to the
process's peak RSS (``ru_maxrss``), as JSON. Used by test_option_memory.py:

    python -m tests.integration.memory_probe '{"input": "x.png", "options": {...}}'

The engine is warmed first with a plain job on a small image, so the sessions and
first-call buffers are in the baseline and the number is what the options add.
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def photo(width: int, height: int) -> bytes:
    """A PNG: dark noise with a bright square subject in the middle third."""
    rng = np.random.default_rng(width * 7919 + height)
    pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    # a bright subject in the middle, so the model finds one and matting has work
    pixels[height // 4 : 3 * height // 4 + 1, width // 4 : 3 * width // 4 + 1] = (230, 40, 40)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def main() -> None:
    from shared.contract.limits import JobLimits
    from shared.contract.options import parse_options
    from shared.contract.settings import load_settings
    from worker.engine import Engine

    case = json.loads(sys.argv[1])
    settings = load_settings()
    engine = Engine(settings.model_home, threads=1)
    limits = JobLimits(
        max_pixels=case.get("max_pixels", settings.max_pixels),
        max_side=settings.max_side,
        max_matting_pixels=case.get("max_matting_pixels", settings.max_matting_pixels),
    )
    wanted = case.get("options", {})
    warm = {"model": wanted.get("model", "u2netp")}
    if wanted.get("refine"):
        warm = {"refine": True}  # refine's own model runs and coarse-grid buffers
    for _ in range(2):  # ONNX Runtime's arena grows on the second run too
        engine.process(photo(64, 64), parse_options(warm), limits=limits)
    if case.get("options", {}).get("alpha_matting"):
        engine.warm_alpha_matting()
    data = Path(case["input"]).read_bytes()
    options = parse_options(case["options"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    background = Path(case["background"]).read_bytes() if case.get("background") else None
    result = engine.process(data, options, limits=limits, background=background)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "baseline_kb": before,
                "added_kb": after - before,
                "peak_kb": after,
                "seconds": round(time.monotonic() - started, 2),
                "output": [result.width, result.height],
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main()
