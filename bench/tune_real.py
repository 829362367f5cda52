"""``cutout tune`` on real photos with human masks: base and tuned on held-back photos.

The photos: ``$CUTOUT_EVAL_DIR/real/horses/manifest.csv`` (``cutout eval``'s format; the
project's evaluation set: real horse photos with human-drawn masks, see docs/tune.md for
source and licence). For each split (a seeded shuffle; seeds 0, 1, 2, …) the first
``--tune`` photos are what a shop would have corrected: ``cutout tune`` gets all of them
(its own validation comes out of these, as a shop's would), and the next ``--test`` photos
are held back. Each setting runs ``cutout tune`` on the tuning photos (``--allow-worse``,
so the model it would have made is measured even when its gate refuses it; the record says
whether the gate passed), then one ``cutout eval`` per split measures the base and every
setting's model on the held-back photos (IoU and boundary F1 of worker/eval/metrics.py).
A rerun with the same ``--out`` reuses the tunes already made.

Settings: ``before`` is the tune as it was (Adam 1e-4 on the decoder, 5 epochs, one
held-out 20% for validation, background swap 0.3, no pull toward the base, the old
tolerances), ``after`` is today's defaults. Prints one JSON document and a Markdown table.

    CUTOUT_EVAL_DIR=/path/to/eval python bench/tune_real.py --out bench/out/tune-real \\
        --splits 3 --tune 20 --test 30 --threads 1 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: the tune before this work (its defaults then), as options of today's command
SETTINGS: dict[str, list[str]] = {
    "before": [
        "--val-split", "0.2", "--epochs", "5", "--lr", "1e-4", "--l2sp", "0", "--ema", "0",
        "--distill", "0", "--swap", "0.3", "--tolerance-iou", "0.005", "--tolerance-bf1", "0.01",
    ],
    "after": [],
    # the base's own map as the target within 3 px of the mask's edge, up to 4 epochs
    "edge": ["--edge-distill", "1", "--epochs", "4"],
}  # fmt: skip
MEASURES = ("iou", "boundary_f1")


def horses() -> Path:
    root = os.environ.get("CUTOUT_EVAL_DIR")
    if not root:
        sys.exit("set CUTOUT_EVAL_DIR to the evaluation data's folder (it holds real/horses/)")
    manifest = Path(root) / "real" / "horses" / "manifest.csv"
    if not manifest.exists():
        sys.exit(f"{manifest}: not found")
    return manifest


def write_split(manifest: Path, seed: int, n_tune: int, n_test: int, out: Path) -> list[Path]:
    """tune.csv and test.csv of one split, with absolute paths; returns them."""
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if n_tune + n_test > len(rows):
        sys.exit(f"{manifest}: {len(rows)} photos, fewer than {n_tune} + {n_test}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    parts = {"tune": order[:n_tune], "test": order[n_tune : n_tune + n_test]}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, picked in parts.items():
        path = out / f"{name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "mask", "category"])
            for i in picked:
                row = rows[i]
                writer.writerow(
                    [manifest.parent / row["image"], manifest.parent / row["mask"], "horses"]
                )
        paths.append(path)
    return paths


def run_tune(args: argparse.Namespace, split: Path, setting: str, home: Path) -> dict[str, Any]:
    name = f"{setting}-{split.name}"
    cmd = [sys.executable, "-m", "cutout", "tune", "--manifest", str(split / "tune.csv")]
    cmd += ["--base", args.base, "--name", name, "--model-home", str(home), "--allow-worse"]
    cmd += ["--threads", str(args.threads), "--record", str(split / f"{name}.json")]
    cmd += SETTINGS[setting] + args.extra.split()
    timing = split / f"{name}.time.json"
    if not timing.exists() or not (home / "custom" / f"{name}.onnx").exists():
        t0, cpu0 = time.monotonic(), os.times()
        with (split / f"{name}.log").open("w") as log:
            done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
        cpu1 = os.times()
        if done.returncode != 0:
            raise SystemExit(f"{name}: cutout tune exited {done.returncode}, see {name}.log")
        cpu = (cpu1.children_user + cpu1.children_system) - (
            cpu0.children_user + cpu0.children_system
        )
        # children's CPU of the whole process: exact with --jobs 1, cumulative with more
        spent = {"seconds": round(time.monotonic() - t0, 1), "cpu_seconds": round(cpu, 1)}
        timing.write_text(json.dumps(spent))  # a rerun reuses this tune
    record = json.loads((split / f"{name}.json").read_text())
    validation = record["validation"]
    return {
        "model": name,
        "gate_passed": validation["gate"]["passed"],
        "validation_delta": validation["gate"]["delta"],
        "best_epoch": validation["best_epoch"],
        **json.loads(timing.read_text()),
    }


def run_eval(args: argparse.Namespace, split: Path, models: list[str], home: Path) -> dict:
    """Test IoU and boundary F1 of the base and ``models`` on the split's held-back photos;
    models already measured in an earlier eval*.json of the split are not run again."""
    wanted = [args.base, *models]
    known: dict[str, dict[str, float]] = {}
    for done in sorted(split.glob("eval*.json")):
        summary = json.loads(done.read_text())["summary"]
        known |= {m: {k: summary[m][k] for k in MEASURES} for m in wanted if m in summary}
    missing = [m for m in wanted if m not in known]
    if missing:
        out = split / f"eval-{'-'.join(missing)}.json"
        cmd = [sys.executable, "-m", "cutout", "eval", "--manifest", str(split / "test.csv")]
        for model in missing:
            cmd += ["--model", model]
        cmd += ["--threads", str(args.threads), "--json", str(out), "-q"]
        env = dict(os.environ, CUTOUT_MODEL_HOME=str(home))
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        summary = json.loads(out.read_text())["summary"]
        known |= {m: {k: summary[m][k] for k in MEASURES} for m in missing}
    return {m: known[m] for m in wanted}


def per_epoch(args: argparse.Namespace, manifest: Path, seed: int) -> dict[str, Any]:
    """``--per-epoch``: the defaults' run on all tuning photos (what the last run of a tune
    trains), in process, with the held-back photos measured after every epoch: whatever
    epoch count cross-validation picks, this says what it gives (a fraction of a whole
    tune's CPU: no folds)."""
    import torch

    from worker.eval.manifest import load_manifest
    from worker.tune import fit
    from worker.tune.config import TuneConfig
    from worker.tune.data import load_samples
    from worker.tune.net import from_onnx

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    split = args.out / f"split{seed}"
    tune_csv, test_csv = write_split(manifest, seed, args.tune, args.test, split)
    config = TuneConfig(manifest=tune_csv, base=args.base, name="x", home=args.model_home)
    for pair in args.set:  # e.g. lr=2e-5: another recipe than the defaults
        key, value = pair.split("=", 1)
        setattr(config, key, type(getattr(config, key) or 0.0)(value))
    recipe = config.recipe()
    base = from_onnx(args.base, args.model_home / f"{args.base}.onnx")
    train_set, test_set = (
        load_samples(load_manifest(tune_csv)),
        load_samples(load_manifest(test_csv)),
    )
    cpu = torch.device("cpu")

    def measure(model: Any) -> dict[str, float]:
        got = fit.evaluate(model, test_set, cpu, 4)
        return {k: got[k] for k in MEASURES}

    row: dict[str, Any] = {"seed": seed, "base": measure(base), "epochs": []}
    say = lambda line: None  # noqa: E731

    def validate(model: Any, epoch: int) -> bool:
        row["epochs"].append(measure(model))
        print(json.dumps({"seed": seed, "epoch": epoch, **row["epochs"][-1]}), file=sys.stderr)
        return False

    fit.fit(base, train_set, recipe, device=cpu, seed=0, progress=fit.Progress(1, say),
            label="all", validate=validate)  # fmt: skip
    tag = "-".join(args.set)
    (split / f"per_epoch{'-' + tag if tag else ''}.json").write_text(json.dumps(row, indent=2))
    return row


def one_split(args: argparse.Namespace, manifest: Path, seed: int) -> dict[str, Any]:
    split = args.out / f"split{seed}"
    write_split(manifest, seed, args.tune, args.test, split)
    home = split / "models"
    home.mkdir(exist_ok=True)
    base_file = home / f"{args.base}.onnx"
    if not base_file.exists():
        base_file.symlink_to(args.model_home / f"{args.base}.onnx")
    tunes = {s: run_tune(args, split, s, home) for s in args.setting}
    test = run_eval(args, split, [t["model"] for t in tunes.values()], home)
    row: dict[str, Any] = {"seed": seed, "base": test[args.base]}
    for setting, info in tunes.items():
        row[setting] = {**info, "test": test[info["model"]]}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def table(rows: list[dict[str, Any]], settings: list[str]) -> str:
    head = "| split | base IoU | base BF1 | " + " | ".join(
        f"{s} IoU | {s} BF1 | {s} gate" for s in settings
    )
    lines = [head + " |", "|" + " --- |" * (3 + 3 * len(settings))]
    for row in [*rows, mean_row(rows, settings)]:
        cells = [str(row["seed"]), f"{row['base']['iou']:.4f}", f"{row['base']['boundary_f1']:.4f}"]
        for s in settings:
            t = row[s]["test"]
            cells += [
                f"{t['iou']:.4f} ({t['iou'] - row['base']['iou']:+.4f})",
                f"{t['boundary_f1']:.4f} ({t['boundary_f1'] - row['base']['boundary_f1']:+.4f})",
                row[s]["gate"],
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_row(rows: list[dict[str, Any]], settings: list[str]) -> dict[str, Any]:
    def mean(get: Any) -> float:
        return sum(get(r) for r in rows) / len(rows)

    out: dict[str, Any] = {
        "seed": "mean",
        "base": {m: mean(lambda r, m=m: r["base"][m]) for m in MEASURES},
    }
    for s in settings:
        passed = sum(bool(r[s]["gate_passed"]) for r in rows)
        wins = sum(all(r[s]["test"][m] > r["base"][m] for m in MEASURES) for r in rows)
        out[s] = {
            "test": {m: mean(lambda r, m=m, s=s: r[s]["test"][m]) for m in MEASURES},
            "gate": f"passed {passed}/{len(rows)}; beat base in both {wins}/{len(rows)}",
        }
    for r in rows:
        for s in settings:
            r[s]["gate"] = "passed" if r[s]["gate_passed"] else "refused"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/tune-real")
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--tune", type=int, default=20, help="photos a shop corrected")
    parser.add_argument("--test", type=int, default=30, help="held-back photos")
    parser.add_argument("--base", default="u2netp", choices=("u2net", "u2netp"))
    parser.add_argument("--setting", action="append", choices=sorted(SETTINGS))
    parser.add_argument("--threads", type=int, default=1, help="per tune and eval")
    parser.add_argument("--jobs", type=int, default=1, help="splits run side by side")
    parser.add_argument("--extra", default="", help="more cutout tune options (smoke runs)")
    parser.add_argument(
        "--per-epoch", action="store_true", help="the defaults' last run only, in process"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="K=V",
        help="with --per-epoch: a field "
        "of worker.tune.config.TuneConfig other than its default (lr=2e-5, ema=0.95)",
    )
    args = parser.parse_args()
    args.setting = args.setting or ["before", "after"]
    manifest = horses()
    from shared.contract.settings import load_settings

    args.model_home = load_settings().model_home
    seeds = range(args.first_seed, args.first_seed + args.splits)
    if args.per_epoch:
        rows = [per_epoch(args, manifest, seed) for seed in seeds]
        print(json.dumps(rows, indent=2))
        return 0
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda s: one_split(args, manifest, s), seeds))
    summary = mean_row(rows, args.setting)
    result = {"photos": str(manifest), "args": vars(args) | {"out": str(args.out)}, "splits": rows}
    result["mean"] = summary
    (args.out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    print(table(rows, args.setting))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
