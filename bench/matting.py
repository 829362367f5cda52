"""Alpha matting a tile at a time (worker/engine/matting.py) against rembg's solve of the
whole picture: how close the two are, and what each costs. Run by hand:

    python bench/matting.py compare [--photos DIR] [--truth 4] [--erode 10] [--budget MB]
    python bench/matting.py cost [--mp 1 --mp 4 --mp 12] [--whole-up-to 1] [--erode 10]

``compare`` mats each picture both ways from the same u2net mask, trimap (thresholds
240/10, ``--erode``) and photo: every ``*.jpg`` / ``*.png`` of ``--photos`` (if given),
and ``--truth`` composites per category of bench/make_truth.py (its held-out
backgrounds; known alpha and foreground colour, made in memory). A picture whose whole
solve fits ``--budget`` MB (the service's by default) is solved whole both ways: lower it
to compare the boxes on small pictures. Per picture: the alpha's max and mean
|tiled − whole| in levels, the IoU of alpha ≥ 128, the premultiplied colour's max and
mean |tiled − whole| (what a viewer shows), and for composites each way's error against
the truth: alpha MAE and the mean |composite − truth| on a grey background over the edge
band (levels).

``cost`` mats a generated photo of each ``--mp`` megapixels (a make_truth product scaled
up, its mask the truth at the model's 320×320 upsampled as the model's is) in a fresh
process per run and prints the peak RSS the matting added (``ru_maxrss``, after pymatting
was loaded and the inputs decoded) and its wall and CPU seconds; whole-picture matting
runs too up to ``--whole-up-to`` MP (it needs ~0.5 kB per pixel plus ~3 kB per unknown
pixel).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.contract.limits import MATTING_BOX_BYTES  # noqa: E402
from worker.engine import matting  # noqa: E402

GREY = 128.0


def both_ways(
    rgb: np.ndarray, mask: np.ndarray, erode: int, budget: int
) -> tuple[np.ndarray, np.ndarray, float, dict[str, float]]:
    """(tiled RGBA, whole RGBA, unknown fraction, seconds of each)."""
    trimap = matting.make_trimap(mask, 240, 10, erode)
    started = time.perf_counter()
    tiled = matting.matte(rgb, trimap, mask, budget=budget)
    middle = time.perf_counter()
    whole = matting.solve(rgb, trimap != matting.UNKNOWN, trimap)
    seconds = {"tiled_s": middle - started, "whole_s": time.perf_counter() - middle}
    return tiled, whole, float((trimap == matting.UNKNOWN).mean()), seconds


def premultiplied(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., :3].astype(np.float64) * (rgba[..., 3:].astype(np.float64) / 255.0)


def differences(tiled: np.ndarray, whole: np.ndarray) -> dict[str, float]:
    alpha = np.abs(tiled[..., 3].astype(np.int16) - whole[..., 3].astype(np.int16))
    a, b = tiled[..., 3] >= 128, whole[..., 3] >= 128
    colour = np.abs(premultiplied(tiled) - premultiplied(whole))
    return {
        "alpha_max": int(alpha.max()),
        "alpha_mean": float(alpha.mean()),
        "iou": float((a & b).sum() / (a | b).sum()) if (a | b).any() else 1.0,
        "colour_max": float(colour.max()),
        "colour_mean": float(colour.mean()),
    }


def truth_errors(rgba: np.ndarray, alpha: np.ndarray, fg: np.ndarray) -> dict[str, float]:
    """Alpha MAE (levels) and the mean |on grey − truth on grey| over the truth's edge
    band grown by 3 px (levels)."""
    import cv2

    mine = rgba[..., 3].astype(np.float64) / 255.0
    band = cv2.dilate(((alpha > 0) & (alpha < 1)).astype(np.uint8), np.ones((7, 7), np.uint8))
    shown = premultiplied(rgba) + (1 - mine[..., None]) * GREY
    truth = alpha[..., None] * fg * 255.0 + (1 - alpha[..., None]) * GREY
    on_grey = np.abs(shown - truth).mean(axis=2)[band > 0]
    return {
        "alpha_mae": float(np.abs(mine - alpha).mean() * 255),
        "on_grey": float(on_grey.mean()) if on_grey.size else 0.0,
    }


def compare(args: argparse.Namespace) -> list[dict[str, object]]:
    from bench.make_truth import CATEGORIES, PHOTOS, make_item
    from shared.contract.settings import load_settings
    from worker.engine import Engine

    engine = Engine(load_settings().model_home, threads=2)
    rows: list[dict[str, object]] = []
    items: list[tuple[str, Image.Image, np.ndarray | None, np.ndarray | None]] = []
    if args.photos:
        for path in sorted(args.photos.iterdir()):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png") and path.stem.count(".") == 0:
                items.append((path.name, Image.open(path).convert("RGB"), None, None))
    rng = np.random.default_rng(29)
    for category in CATEGORIES:
        for i in range(args.truth):
            image, truth, colour, _, _ = make_item(category, rng, PHOTOS["heldout"])
            picture = Image.fromarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
            items.append((f"{category}-{i}", picture, truth, colour))
    for name, picture, alpha, fg in items:
        mask = np.asarray(engine.predict_mask(picture, "u2net"))
        rgb = np.asarray(picture)
        tiled, whole, unknown, seconds = both_ways(rgb, mask, args.erode, args.budget * 10**6)
        row: dict[str, object] = {
            "name": name,
            "size": f"{picture.width}x{picture.height}",
            "unknown": unknown,
            **differences(tiled, whole),
            **seconds,
        }
        if alpha is not None and fg is not None:
            for way, rgba in (("tiled", tiled), ("whole", whole)):
                for key, value in truth_errors(rgba, alpha, fg).items():
                    row[f"{way}_{key}"] = value
        rows.append(row)
        print_row(row)
    return rows


def print_row(row: dict[str, object]) -> None:
    line = (
        f"{row['name']:<22}{row['size']:>10} unknown {row['unknown']:.3f}  alpha max "
        f"{row['alpha_max']:>3} mean {row['alpha_mean']:.4f}  IoU {row['iou']:.5f}  colour "
        f"max {row['colour_max']:5.1f} mean {row['colour_mean']:.4f}  "
        f"{row['tiled_s']:.1f}s/{row['whole_s']:.1f}s"
    )
    if "tiled_alpha_mae" in row:
        line += (
            f"  truth: alpha MAE {row['tiled_alpha_mae']:.2f}/{row['whole_alpha_mae']:.2f}"
            f" on grey {row['tiled_on_grey']:.2f}/{row['whole_on_grey']:.2f}"
        )
    print(line, flush=True)


def scene(megapixels: float, folder: Path) -> tuple[Path, Path]:
    """A make_truth product of ``megapixels`` and its model-like mask, as PNG files."""
    from bench.make_truth import PHOTOS, make_item

    image, alpha, _, _, _ = make_item("products", np.random.default_rng(4), PHOTOS["heldout"])
    height, width = alpha.shape
    scale = (megapixels * 1e6 / (width * height)) ** 0.5
    size = (round(width * scale), round(height * scale))
    picture = Image.fromarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
    truth = Image.fromarray(np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8))
    model_like = truth.resize((320, 320), Image.Resampling.BOX)
    paths = folder / f"{megapixels}.png", folder / f"{megapixels}.mask.png"
    picture.resize(size, Image.Resampling.LANCZOS).save(paths[0])
    model_like.resize(size, Image.Resampling.BILINEAR).save(paths[1])
    return paths


def probe(image_path: str, mask_path: str, way: str, erode: int) -> None:
    """In this fresh process: mat the files ``way`` and print JSON of its cost."""
    image = Image.open(image_path).convert("RGB")
    mask = Image.open(mask_path).convert("L")
    matting.warm_alpha_matting()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    if way == "tiled":
        matting.alpha_matting_cutout(image, mask, 240, 10, erode)
    else:
        rgb, mask_array = np.asarray(image), np.asarray(mask)
        trimap = matting.make_trimap(mask_array, 240, 10, erode)
        matting.solve(rgb, trimap != matting.UNKNOWN, trimap)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trimap = matting.make_trimap(np.asarray(mask), 240, 10, erode)
    print(
        json.dumps(
            {
                "added_mb": (after - before) / 1024,
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "unknown": float((trimap == matting.UNKNOWN).mean()),
            }
        )
    )


def cost(args: argparse.Namespace) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    columns = ("MP", "way", "unknown", "added MB", "B/px", "wall s", "cpu s")
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, (5, 6, 8, 9, 6, 7, 6), strict=True)))
    with tempfile.TemporaryDirectory() as tmp:
        for megapixels in args.mp or [1.0, 4.0, 12.0]:
            image_path, mask_path = scene(megapixels, Path(tmp))
            ways = ["tiled"] + (["whole"] if megapixels <= args.whole_up_to else [])
            for way in ways:
                command = [sys.executable, __file__, "_probe", str(image_path), str(mask_path)]
                done = subprocess.run(
                    [*command, way, str(args.erode)], capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    raise SystemExit(done.stderr[-2000:])
                report = json.loads(done.stdout.strip().splitlines()[-1])
                row = {"mp": megapixels, "way": way, **report}
                rows.append(row)
                per_pixel = report["added_mb"] * 2**20 / (megapixels * 1e6)
                print(
                    f"{megapixels:5.1f} {way:>6} {report['unknown']:8.3f} "
                    f"{report['added_mb']:9.0f} {per_pixel:6.1f} "
                    f"{report['wall_s']:7.1f} {report['cpu_s']:6.1f}",
                    flush=True,
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_probe"]:
        probe(argv[1], argv[2], argv[3], int(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("compare")
    one.add_argument("--photos", type=Path, help="a folder of photos (*.jpg, *.png)")
    one.add_argument("--truth", type=int, default=4, help="composites per category")
    one.add_argument("--erode", type=int, default=10)
    one.add_argument(
        "--budget",
        type=int,
        default=MATTING_BOX_BYTES // 10**6,
        metavar="MB",
        help="bytes one solve may use (default the service's; lower forces boxes)",
    )
    one.add_argument("--json", type=Path)
    two = sub.add_parser("cost")
    two.add_argument("--mp", type=float, action="append", default=[])
    two.add_argument("--whole-up-to", type=float, default=1.0)
    two.add_argument("--erode", type=int, default=10)
    two.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = compare(args) if args.command == "compare" else cost(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
