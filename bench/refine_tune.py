"""Sweep ``refine``'s settings on a truth manifest, with the models' maps cached.

    python bench/refine_tune.py --manifest bench/out/truth/tune/manifest.csv \
        [--set radius=4,8 --set eps=1e-3,1e-2 ...] [--fusion u2net,u2netp,u2netp_flip]

The four 320×320 maps of every image (u2net, u2netp, and each horizontally flipped) are
computed once and cached next to this script (``bench/out/maps/``). Each configuration
(the cartesian product of the ``--set`` values over :class:`RefineParams`'s defaults) is
then scored as ``cutout eval`` scores it (mean IoU, boundary F1, MAE over images, and per
category), beside exact u2net (rembg's mask). Choose settings on the tune split ONLY;
report the held-out split and the team's evaluation set (its ``gt/``, not in the
repository) with the chosen defaults, untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.contract.settings import load_settings  # noqa: E402
from worker.engine import Engine, decode_image  # noqa: E402
from worker.engine.families import U2NetFamily  # noqa: E402
from worker.engine.refine import RefineParams, fuse, normalise, refine  # noqa: E402
from worker.eval.manifest import load_manifest  # noqa: E402
from worker.eval.metrics import evaluate  # noqa: E402

CACHE = ROOT / "bench" / "out" / "maps"
MAPS = ("u2net", "u2netp", "u2netp_flip")


def cache_file(cache: Path, data: bytes) -> Path:
    """Where the maps of the photo ``data`` are kept in the folder ``cache``."""
    return cache / f"{hashlib.sha256(data).hexdigest()[:20]}.npz"


def exact_mask(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """rembg's mask (the engine's own postprocess) from a normalised 320×320 map."""
    return np.asarray(U2NetFamily.postprocess(prob[np.newaxis, np.newaxis], size))


def maps_for(
    engine: Engine, image: Image.Image, data: bytes, names: Iterable[str] = MAPS
) -> dict[str, np.ndarray]:
    """The normalised 320×320 maps ``names`` of a photo (a model, or ``model_flip`` for its
    mirrored pass; any model the engine serves, tuned ones included), cached per photo."""
    path = cache_file(CACHE, data)
    out: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as cached:
            out = {k: cached[k] for k in cached.files}
    wanted = {*MAPS, *names}
    missing = sorted({n.removesuffix("_flip") for n in wanted if n not in out})
    if not missing:
        return out
    batch = U2NetFamily.preprocess(image)
    flipped = batch[..., ::-1].copy()
    for model in missing:
        session = engine.session(model)
        feed = {session.get_inputs()[0].name: np.concatenate([batch, flipped])}
        both = session.run(None, feed)[0]
        out[model] = normalise(both[0, 0])
        out[f"{model}_flip"] = normalise(both[1, 0])[:, ::-1]
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="K=V1,V2")
    parser.add_argument(
        "--fusion",
        action="append",
        default=[],
        help="comma-separated maps to average (repeatable: several columns)",
    )
    parser.add_argument("--limit", type=int)
    parser.add_argument("--cache-only", action="store_true", help="compute the maps, no scores")
    parser.add_argument(
        "--cached", action="store_true", help="score only the items whose maps are cached"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    engine = Engine(settings.model_home, threads=2)
    items = load_manifest(args.manifest, limit=args.limit)
    fusions = [f.split(",") for f in args.fusion] or [["u2net", "u2netp", "u2netp_flip"]]
    grid: list[tuple[str, list[str]]] = []
    for text in args.set:
        key, _, values = text.partition("=")
        grid.append((key, values.split(",")))
    fields = {f.name: f.type for f in dataclasses.fields(RefineParams)}
    configs = []
    for combo in itertools.product(*[v for _, v in grid]):
        values = {}
        for (key, _), value in zip(grid, combo, strict=True):
            kind = fields[key]
            values[key] = (
                (value.lower() == "true")
                if kind in (bool, "bool")
                else (int(value) if kind in (int, "int") else float(value))
            )
        configs.append(RefineParams(**values))
    results: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for item in items:
        data = item.image_path.read_bytes()
        if args.cached and not cache_file(CACHE, data).exists():
            continue
        image = decode_image(data)
        truth = np.asarray(Image.open(item.mask_path).convert("L"))
        maps = maps_for(engine, image, data, {m for f in fusions for m in f})
        if args.cache_only:
            continue
        rgb = np.asarray(image.convert("RGB"))
        exact = exact_mask(maps["u2net"], image.size)
        results.setdefault("exact u2net", []).append((item.category, evaluate(exact, truth)))
        for fusion in fusions:
            prob = fuse([maps[m] for m in fusion])
            for params in configs:
                name = f"{'+'.join(fusion)} {_describe(params)}"
                alpha = refine(rgb, prob, params)[..., 3]
                results.setdefault(name, []).append((item.category, evaluate(alpha, truth)))
    if args.cache_only:
        return 0
    report(results)
    return 0


def report(results: dict[str, list[tuple[str, dict[str, float]]]]) -> None:
    """Print each method's means over images, overall and per category."""
    categories = sorted({c for c, _ in next(iter(results.values()))})
    header = ["IoU", "BF1", "MAE"] + [f"{c[:6]} IoU/BF1" for c in categories]
    print(f"{'method':60s} " + " ".join(f"{h:>14s}" for h in header))
    for name, rows in results.items():

        def mean(metric: str, cat: str | None = None, rows=rows) -> float:
            vals = [r[metric] for c, r in rows if cat is None or c == cat]
            return float(np.mean(vals))

        cells = [f"{mean('iou'):.4f}", f"{mean('boundary_f1'):.4f}", f"{mean('mae'):.4f}"]
        cells += [f"{mean('iou', c):.3f}/{mean('boundary_f1', c):.3f}" for c in categories]
        print(f"{name:60s} " + " ".join(f"{c:>14s}" for c in cells))


def _describe(params: RefineParams) -> str:
    default = RefineParams()
    changed = {
        f.name: getattr(params, f.name)
        for f in dataclasses.fields(params)
        if getattr(params, f.name) != getattr(default, f.name)
    }
    return ",".join(f"{k}={v}" for k, v in changed.items()) or "defaults"


if __name__ == "__main__":
    raise SystemExit(main())
