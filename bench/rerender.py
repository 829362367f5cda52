"""What a corrected mask's re-render costs beside the job it corrects.

For generated photos of a few sizes (testkit.batch.photo, JPEG), in one process with one
ONNX Runtime thread (a worker's setting): the wall and CPU seconds of ``Engine.process``
(u2net, the job) and of ``Engine.rerender`` with a corrected mask at the photo's size
(the correction: no model runs), for plain PNG, ``refine`` (its decontamination at the
mask's edge) and JPEG on a background colour. Best of ``--rounds``.

    python bench/rerender.py                  # 1 MP and 12 MP, 2 rounds
    python bench/rerender.py --sizes 4000x3000 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import resource
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from shared.contract.options import parse_options
from shared.contract.settings import load_settings
from testkit.batch import photo
from worker.engine import Engine

OPTIONS: dict[str, dict[str, object]] = {
    "png": {},
    "refine": {"refine": True},
    "jpeg+bg_color": {"format": "jpeg", "bg_color": "#ffffff"},
}


def best(call: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``rounds`` calls."""
    runs = []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def mask_png(size: tuple[int, int]) -> bytes:
    """A corrected mask: a rectangle over the middle, with a soft 8 px edge."""
    width, height = size
    mask = np.zeros((height, width), np.uint8)
    mask[height // 8 : height * 7 // 8, width // 4 : width * 3 // 4] = 255
    soft = Image.fromarray(mask).resize((width // 8, height // 8), Image.Resampling.BOX)
    out = io.BytesIO()
    soft.resize(size, Image.Resampling.BILINEAR).save(out, "PNG")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1200x900,4000x3000")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    engine = Engine(load_settings().model_home, threads=1)
    engine.warm(["u2net"])
    print("size        options         job (process)      correction (rerender)")
    for text in args.sizes.split(","):
        width, height = (int(v) for v in text.split("x"))
        data, mask = photo((width, height), fmt="JPEG"), mask_png((width, height))
        for name, raw in OPTIONS.items():
            options = parse_options({**raw, "model": "u2net"})
            job = best(lambda o=options, d=data: engine.process(d, o), args.rounds)  # type: ignore[misc]
            fix = best(lambda o=options, d=data, m=mask: engine.rerender(d, m, o), args.rounds)  # type: ignore[misc]
            print(
                f"{text:11} {name:15} {job[0]:5.2f} s ({job[1]:5.2f} CPU)   "
                f"{fix[0]:5.2f} s ({fix[1]:5.2f} CPU)"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
