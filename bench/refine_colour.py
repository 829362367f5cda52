"""Colour evidence for ``refine``: edge colours against the known foreground colour.

    python bench/refine_colour.py --manifest bench/out/truth/heldout/manifest.csv \
        [--limit-matting 16] [--json bench/out/colour.json]

On composites with a known foreground colour (``bench/make_truth.py`` writes it in the
manifest's ``foreground`` column), for three cutouts of each image:

- ``naive``: rembg's default cutout (u2net mask, ``Image.composite``: what Cutout gives
  without options);
- ``alpha_matting``: rembg's alpha matting on the u2net mask (thresholds 240/10, erode 10),
  on the first ``--limit-matting`` images of each category (it is slow);
- ``refine``: ``refine=true``.

Two numbers per cutout, in 8-bit levels (0..255), means over images:

- ``edge colour``: mean |RGB − F| over the truth's edge band (0 < α < 1) where the
  cutout's alpha is above 0 (RGB is the PNG's straight colour, as any viewer shows it);
- ``on new bg``: mean |C − T| over the band grown by 3 px, where C is the cutout composited
  onto a new background (mid-grey and saturated blue, averaged) and T the truth
  composite ``αF + (1 − α)N`` on the same background: fringe, halo and alpha errors alike.

The u2net and u2netp maps come from bench/refine_tune.py's cache (computed when missing).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.refine_tune import maps_for  # noqa: E402
from shared.contract.settings import load_settings  # noqa: E402
from worker.engine import Engine, decode_image  # noqa: E402
from worker.engine.compose import naive_cutout  # noqa: E402
from worker.engine.matting import alpha_matting_cutout  # noqa: E402
from worker.engine.refine import FUSION, fuse, refine  # noqa: E402

NEW_BACKGROUNDS = (np.array([128, 128, 128], np.float32), np.array([20, 60, 230], np.float32))


def scores(cutout: np.ndarray, alpha: np.ndarray, fg: np.ndarray) -> dict[str, float]:
    """``cutout`` H×W×4 uint8 against truth ``alpha`` (0..1) and colour ``fg`` (0..255)."""
    import cv2

    band = (alpha > 0) & (alpha < 1)
    zone = cv2.dilate(band.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    rgb, a = cutout[..., :3].astype(np.float32), cutout[..., 3].astype(np.float32) / 255
    seen = band & (a > 0)
    edge = float(np.abs(rgb[seen] - fg[seen]).mean()) if seen.any() else float("nan")
    errors = []
    for bg in NEW_BACKGROUNDS:
        ours = a[..., None] * rgb + (1 - a[..., None]) * bg
        truth = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
        errors.append(float(np.abs(ours[zone] - truth[zone]).mean()))
    return {"edge_colour": edge, "on_new_bg": float(np.mean(errors))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--limit-matting", type=int, default=4, help="per category")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    engine = Engine(load_settings().model_home, threads=2)
    rows: list[dict[str, object]] = []
    matted: dict[str, int] = {}
    with args.manifest.open(newline="") as f:
        items = list(csv.DictReader(f))
    for item in items:
        base = args.manifest.parent
        data = (base / item["image"]).read_bytes()
        image = decode_image(data)
        alpha = np.asarray(Image.open(base / item["mask"]).convert("L"), np.float32) / 255
        fg = np.asarray(Image.open(base / item["foreground"]).convert("RGB"), np.float32)
        maps = maps_for(engine, image, data)
        small = Image.fromarray((maps["u2net"] * 255).astype(np.uint8))
        mask = small.resize(image.size, Image.Resampling.LANCZOS)
        row: dict[str, object] = {"image": item["image"], "category": item["category"]}
        row["naive"] = scores(np.asarray(naive_cutout(image, mask)), alpha, fg)
        rgb = np.asarray(image.convert("RGB"))
        row["refine"] = scores(refine(rgb, fuse([maps[m] for m in FUSION])), alpha, fg)
        if matted.get(item["category"], 0) < args.limit_matting:
            matted[item["category"]] = matted.get(item["category"], 0) + 1
            try:
                cut = alpha_matting_cutout(image, mask, 240, 10, 10)
                row["alpha_matting"] = scores(np.asarray(cut), alpha, fg)
            except ValueError as exc:  # pymatting gives up: rembg falls back to naive
                row["alpha_matting"] = {"error": str(exc)}
        rows.append(row)
        print(item["image"], {k: v for k, v in row.items() if isinstance(v, dict)}, flush=True)
    print_summary(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def print_summary(rows: list[dict[str, object]]) -> None:
    print(f"\n{'method':<15}{'images':>7}{'edge colour':>13}{'on new bg':>11}   (8-bit levels)")
    # all methods over the same images: those alpha matting ran on, then all without it
    subsets = {
        "images with alpha matting": [
            r for r in rows if "error" not in r.get("alpha_matting", {"error": 1})
        ],  # type: ignore[operator]
        "all images": rows,
    }
    for label, subset in subsets.items():
        print(f"-- {label} ({len(subset)})")
        for method in ("naive", "alpha_matting", "refine"):
            values = [r[method] for r in subset if method in r]
            if not values:
                continue
            edge = np.nanmean([v["edge_colour"] for v in values])  # type: ignore[index]
            new = np.mean([v["on_new_bg"] for v in values])  # type: ignore[index]
            print(f"{method:<15}{len(values):>7}{edge:>13.1f}{new:>11.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
