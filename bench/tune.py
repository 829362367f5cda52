"""``cutout tune`` on a generated vertical: the gain on photos it never trained on, and time.

Generates the watch vertical (testkit/vertical.py: drawn here, exact masks, MIT),
splits it into train and test once (seeded), runs ``cutout tune`` on the train split for
each configuration, then ``cutout eval`` of base and tuned on the test split, and prints
one JSON summary: test IoU / boundary F1 of each, the gain, and the tune's wall and CPU
seconds (CPU seconds / cores is what the tune would take on an idle machine of that many
cores; a shared machine's wall time is longer).

    python bench/tune.py --out bench/out/tune --n 100 --test-share 0.6 \\
        --run u2netp:decoder:3 --run u2net:head:2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.vertical import write  # noqa: E402


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    cpu0, t0 = _children_cpu(), time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    return code.returncode, time.monotonic() - t0, _children_cpu() - cpu0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/tune")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test-share", type=float, default=0.6)
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="BASE:LAYERS:EPOCHS",
        help="a tune to run (repeatable; default u2netp:decoder:3)",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, help="passed to cutout tune --threads")
    parser.add_argument("--model-home", type=Path, help="default: OUT/models (weights linked)")
    return parser.parse_args()


def tune_one(
    spec: str, args: argparse.Namespace, train: Path, home: Path, env: dict[str, str]
) -> dict[str, object]:
    """``cutout tune`` of one BASE:LAYERS:EPOCHS on the train split: its summary entry."""
    out = args.out
    base, layers, epochs = spec.split(":")
    name = f"bench-{base}-{layers}-{epochs}"
    cmd = [
        sys.executable,
        "-m",
        "cutout",
        "tune",
        "--manifest",
        str(train),
        "--base",
        base,
        "--name",
        name,
        "--layers",
        layers,
        "--epochs",
        epochs,
        "--batch-size",
        str(args.batch_size),
        "--model-home",
        str(home),
        "--record",
        str(out / f"{name}.json"),
    ]
    code, wall, cpu = run(cmd, env, out / f"{name}.log")
    entry: dict[str, object] = {
        "base": base,
        "layers": layers,
        "epochs": int(epochs),
        "name": name,
        "exit": code,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "command": " ".join(cmd[1:]),
    }
    if code == 0:
        record = json.loads((out / f"{name}.json").read_text())
        entry["validation"] = record["validation"]["base"], record["validation"]["tuned"]
    return entry


def evaluate_test(
    names: list[tuple[str, str]], test: Path, out: Path, env: dict[str, str]
) -> dict[str, object]:
    """``cutout eval`` of the bases and the tuned models on the test split, and the gains."""
    cmd = [
        sys.executable,
        "-m",
        "cutout",
        "eval",
        "--manifest",
        str(test),
        "--json",
        str(out / "eval.json"),
    ]
    for base in sorted({b for b, _ in names}):
        cmd += ["--model", base]
    for _, name in names:
        cmd += ["--model", name]
    code, _, _ = run(cmd, env, out / "eval.log")
    report = json.loads((out / "eval.json").read_text()) if code in (0, 1) else {}
    means = report.get("summary") or {}
    gains = {
        name: {
            metric: round(means[name][metric] - means[base][metric], 4)
            for metric in ("iou", "boundary_f1")
        }
        for base, name in names
        if name in means and base in means
    }
    return {"eval_exit": code, "means": means, "gain_over_base": gains}


def main() -> int:
    args = parse_args()
    out = args.out
    data = out / "data"
    manifests = write(data, args.n, args.seed, args.test_share)
    home = args.model_home or out / "models"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CUTOUT_MODEL_HOME": str(home)}
    entries: list[dict[str, object]] = []
    summary: dict[str, object] = {
        "set": {
            "generator": "testkit/vertical.py",
            "n": args.n,
            "seed": args.seed,
            "test_share": args.test_share,
            "license": "generated, MIT",
        },
        "cores": os.cpu_count(),
        "runs": entries,
    }
    runs = args.run or ["u2netp:decoder:3"]
    names = []
    for spec in runs:
        entry = tune_one(spec, args, manifests["train"], home, env)
        if entry["exit"] == 0:
            names.append((str(entry["base"]), str(entry["name"])))
        entries.append(entry)
        print(json.dumps(entry), flush=True)
    if names:
        summary["test"] = evaluate_test(names, manifests["test"], out, env)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
