"""Benchmark: fast mode (int8 u2net, OpenVINO) against exact u2net (ONNX Runtime), one run.

    python bench/fast.py [--home DIR] [--size 320] [--threads 2] [--rounds 2] [--no-quality]

Quality: every item of the evaluation set's ``gt/`` through both modes (mask only), IoU
and boundary F1 against the truth, overall and per category (worker.eval.metrics).
Speed: every photo of its ``photos/`` end to end (bytes → decode → model →
encoded PNG, default options) through both modes of one Engine with ``--threads``,
``--rounds`` interleaved rounds, best round of each; also CPU seconds per image (what a
user pays for, steadier than wall time on a shared machine).

The fast model must be built in ``--home`` for ``--size`` (``cutout models build-fast``;
another size: ``python -c "from worker.engine.fast import build_fast_model; ..."``).
rembg's figure comes from ``bench/engine.py`` (same photos; it runs rembg in its venv).
The evaluation set is not in the repository: ``CUTOUT_EVAL_DIR`` names its folder
(bench/evalset.py); without it the script says what to set and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from evalset import need

if TYPE_CHECKING:
    from worker.engine import Engine

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="model home (default: CUTOUT_MODEL_HOME)")
    parser.add_argument("--size", type=int, default=None, help="fast input size (320)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    gt = None if args.no_quality else need("gt")
    photo_dir = None if args.no_speed else need("photos")
    sys.path.insert(0, str(ROOT))
    from shared.contract.settings import load_settings
    from worker.engine import Engine, fast

    if args.size:
        fast.FAST_INPUT_SIZE = args.size
    home = args.home or load_settings().model_home
    engine = Engine(home, threads=args.threads)
    engine.warm(["u2net"])
    engine.warm_fast(build=False)
    print(
        f"fast input {fast.FAST_INPUT_SIZE}, threads {args.threads}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}, toolkit {fast.toolkit_versions()}"
    )
    report: dict = {"size": fast.FAST_INPUT_SIZE, "threads": args.threads}
    if gt is not None:
        report["quality"] = print_quality(measure_quality(engine, gt))
    if photo_dir is not None:
        count, best = measure_speed(engine, photo_dir, args.rounds)
        print_speed(best, count, args.rounds)
        report["speed"] = best
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def measure_quality(engine: Engine, gt: Path) -> list[dict]:
    """Each item of ``gt``'s manifest through both modes: its category and metrics."""
    from shared.contract.options import Options
    from worker.engine.imageio import decode_image
    from worker.eval.manifest import load_manifest
    from worker.eval.metrics import evaluate
    from worker.eval.runner import alpha_of, load_truth

    rows = []
    for item in load_manifest(gt / "manifest.csv"):
        image = decode_image(item.image_path.read_bytes())
        truth = load_truth(item.mask_path)
        row: dict = {"category": item.category}
        for mode, flag in (("exact", False), ("fast", True)):
            alpha = alpha_of(engine.render(image, Options(mask_only=True, fast=flag)))
            row[mode] = evaluate(alpha, truth)
        rows.append(row)
    return rows


def print_quality(rows: list[dict]) -> dict:
    """Print the means of both modes overall and per category; return them."""
    import numpy as np

    cats = ["all", *sorted({r["category"] for r in rows})]
    quality = {}
    print(f"\nquality on eval/gt ({len(rows)} items)")
    print(
        f"{'category':<16}{'n':>4}{'IoU exact':>11}{'fast':>8}{'Δ':>8}"
        f"{'bF1 exact':>11}{'fast':>8}{'Δ':>8}"
    )
    for cat in cats:
        sel = [r for r in rows if cat in ("all", r["category"])]
        m = {
            (mode, k): float(np.mean([r[mode][k] for r in sel]))
            for mode in ("exact", "fast")
            for k in ("iou", "boundary_f1")
        }
        quality[cat] = {f"{a}_{b}": v for (a, b), v in m.items()} | {"n": len(sel)}
        print(
            f"{cat:<16}{len(sel):>4}{m['exact', 'iou']:>11.4f}{m['fast', 'iou']:>8.4f}"
            f"{m['fast', 'iou'] - m['exact', 'iou']:>+8.4f}{m['exact', 'boundary_f1']:>11.4f}"
            f"{m['fast', 'boundary_f1']:>8.4f}"
            f"{m['fast', 'boundary_f1'] - m['exact', 'boundary_f1']:>+8.4f}"
        )
    return quality


def measure_speed(engine: Engine, photo_dir: Path, rounds: int) -> tuple[int, dict[str, dict]]:
    """Every photo end to end through both modes, interleaved rounds; each mode's best."""
    import numpy as np

    from shared.contract.options import Options

    photos = [p.read_bytes() for p in sorted(photo_dir.glob("*.jpg"))]
    best: dict[str, dict] = {}
    for flag in (False, True):
        engine.process(photos[0], Options(fast=flag))  # warm-up
    for _ in range(rounds):
        for mode, flag in (("exact", False), ("fast", True)):
            options = Options(fast=flag)
            t, c = time.perf_counter(), _cpu()
            results = [engine.process(data, options) for data in photos]
            wall, cpu = time.perf_counter() - t, _cpu() - c
            run = {
                "ips": len(photos) / wall,
                "cpu_per_image": cpu / len(photos),
                "inference_ms": 1000 * float(np.mean([r.timings["inference"] for r in results])),
            }
            if mode not in best or run["ips"] > best[mode]["ips"]:
                best[mode] = run
    return len(photos), best


def print_speed(best: dict[str, dict], count: int, rounds: int) -> None:
    print(f"\nspeed, {count} photos end to end (decode → PNG), best of {rounds}")
    for mode, run in best.items():
        print(
            f"{mode:<6} {run['ips']:6.2f} img/s  {run['cpu_per_image']:.3f} CPU s/img  "
            f"inference {run['inference_ms']:.0f} ms/img"
        )
    print(
        f"fast / exact: {best['fast']['ips'] / best['exact']['ips']:.2f}x img/s, "
        f"{best['exact']['cpu_per_image'] / best['fast']['cpu_per_image']:.2f}x CPU s/img"
    )


if __name__ == "__main__":
    raise SystemExit(main())
