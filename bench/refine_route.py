"""Route each photo to u2net or a companion model by how flat its subject's colours are.

    python bench/refine_route.py --companion gen-p-decb \\
        --choose bench/out/truth/tune/manifest.csv --choose bench/out/truth2/tune/manifest.csv \\
        --choose bench/out/truth3/tune/manifest.csv \\
        --report bench/out/truth3/fresh/manifest.csv --report "$CUTOUT_EVAL_DIR/gt/manifest.csv"

A flat graphic (a logo in one or two brand colours) is where u2net fills holes and picks
the wrong region, and where a companion tuned on generated graphics gains most; on real
photographs that companion breaks (docs/refine.md, fourth round). The router's feature is
the share of the subject's pixels (where either model's map is ≥ 0.5, on a 320×320 copy)
whose colour falls in the subject's most common colour bin (8 levels per channel). The
threshold is chosen on the ``--choose`` manifests only (best mean of IoU and boundary F1
gain over the refined u2net), then applied unchanged to each ``--report`` manifest.
Every column is refine's edge stages on the map named.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from refine_tune import exact_mask, maps_for  # noqa: E402

from shared.contract.settings import load_settings  # noqa: E402
from worker.engine import Engine, decode_image  # noqa: E402
from worker.engine.refine import refine  # noqa: E402
from worker.eval.manifest import load_manifest  # noqa: E402
from worker.eval.metrics import evaluate  # noqa: E402

Scores = dict[str, float]
Row = tuple[str, str, float, dict[str, Scores]]
THRESHOLDS = [round(t, 2) for t in np.arange(0.30, 1.0001, 0.05)]


def flatness(image: Image.Image, maps: list[np.ndarray]) -> float:
    """Share of the subject's pixels in its most common colour bin (0 when no subject)."""
    small = np.asarray(image.convert("RGB").resize((320, 320), Image.Resampling.BILINEAR))
    subject = np.zeros((320, 320), dtype=bool)
    for m in maps:
        subject |= m >= 0.5
    if subject.sum() < 50:
        return 0.0
    bins = (small[subject] // 32).astype(np.int32)
    codes = bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2]
    return float(np.bincount(codes, minlength=512).max() / codes.size)


def score(engine: Engine, manifest: Path, companion: str) -> list[Row]:
    """(category, image, flatness, {method: scores}) for each item of ``manifest``."""
    rows = []
    for item in load_manifest(manifest):
        data = item.image_path.read_bytes()
        image = decode_image(data)
        truth = np.asarray(Image.open(item.mask_path).convert("L"))
        maps = maps_for(engine, image, data, {"u2net", companion})
        rgb = np.asarray(image.convert("RGB"))
        methods = {
            "exact": evaluate(exact_mask(maps["u2net"], image.size), truth),
            "refine": evaluate(refine(rgb, maps["u2net"])[..., 3], truth),
            "companion": evaluate(refine(rgb, maps[companion])[..., 3], truth),
        }
        feature = flatness(image, [maps["u2net"], maps[companion]])
        rows.append((item.category, item.image_path.name, feature, methods))
    return rows


def routed(rows: list[Row], threshold: float) -> list[Scores]:
    return [m["companion"] if f >= threshold else m["refine"] for _, _, f, m in rows]


def mean(scores: list[Scores], key: str) -> float:
    return float(np.mean([s[key] for s in scores])) if scores else float("nan")


def table(name: str, rows: list[Row], threshold: float) -> None:
    chosen = routed(rows, threshold)
    columns = {
        "exact u2net": [m["exact"] for *_, m in rows],
        "refine (landed)": [m["refine"] for *_, m in rows],
        "companion": [m["companion"] for *_, m in rows],
        f"routed (flat ≥ {threshold})": chosen,
    }
    sent = sum(f >= threshold for _, _, f, _ in rows)
    print(f"\n{name}: {len(rows)} items, {sent} routed to the companion")
    categories = sorted({c for c, *_ in rows})
    head = "".join(f"{c[:12]:>16}" for c in categories)
    print(f"{'method':28}{'IoU':>8}{'BF1':>8}{'MAE':>8}{head}")
    for label, scores in columns.items():
        cells = ""
        for c in categories:
            picked = [s for s, (cat, *_) in zip(scores, rows, strict=True) if cat == c]
            cells += f"{mean(picked, 'iou'):>8.3f}{mean(picked, 'boundary_f1'):>8.3f}"
        print(
            f"{label:28}{mean(scores, 'iou'):8.4f}{mean(scores, 'boundary_f1'):8.4f}"
            f"{mean(scores, 'mae'):8.4f}{cells}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--companion", required=True, help="a served (tuned) model's name")
    parser.add_argument("--choose", type=Path, action="append", required=True)
    parser.add_argument("--report", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    engine = Engine(load_settings().model_home, threads=2)
    chosen_rows = {m: score(engine, m, args.companion) for m in args.choose}
    gains: dict[float, list[float]] = defaultdict(list)
    for rows in chosen_rows.values():
        base = [m["refine"] for *_, m in rows]
        for t in THRESHOLDS:
            got = routed(rows, t)
            gains[t].append(
                (mean(got, "iou") - mean(base, "iou"))
                + (mean(got, "boundary_f1") - mean(base, "boundary_f1"))
            )
    print("threshold: mean over the --choose manifests of (ΔIoU + ΔBF1) over refine")
    for t in THRESHOLDS:
        print(f"  {t:.2f}  {np.mean(gains[t]):+.4f}")
    best = max(THRESHOLDS, key=lambda t: (np.mean(gains[t]), t))
    print(f"chosen: {best}")
    for manifest, rows in chosen_rows.items():
        table(f"{manifest} (chosen on)", rows, best)
    for manifest in args.report:
        table(str(manifest), score(engine, manifest, args.companion), best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
