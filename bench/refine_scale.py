"""Does u2net see more at a larger input, or in its own side outputs? (issue 14, round 6)

    python bench/refine_scale.py --manifest bench/out/truth/tune/manifest.csv \
        [--column s320_d0 --column s448_d0 --column s320_d0+s448_d0 ...] [--cache-only]

u2net's graph declares a 1×3×320×320 input, but its resize sizes come from Shape ops, so
with the declared dims made free it runs at any size (docs/refine.md). Every
photo is run once per size in ``SIZES`` (the same preprocessing as rembg's, at that size)
and all seven outputs are kept: ``s<size>_d0`` is the fused map rembg uses, ``d1``…``d6``
the side outputs (finest first). The normalised maps are cached per photo in
``bench/out/maps_scale/``. A column is one map or a ``+``-joined mean of maps; each is
scored after refine's edge stages (the landed defaults), beside exact u2net (rembg's
mask) and the landed refine (``s320_d0``). Choose on tune splits only.

``--isnet FILE --isnet-size 1024`` adds ``isnet1024``: an IS-Net ONNX file's map (rembg's
isnet preprocessing), cached in ``bench/out/maps_isnet/``. The project ships no IS-Net
weights; docs/refine.md ("A sixth round") says where the measured file came from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.refine_tune import cache_file, exact_mask, report  # noqa: E402
from shared.contract.settings import load_settings  # noqa: E402
from worker.engine import decode_image  # noqa: E402
from worker.engine.families import U2NetFamily  # noqa: E402
from worker.engine.refine import fuse, normalise, refine  # noqa: E402
from worker.eval.manifest import load_manifest  # noqa: E402
from worker.eval.metrics import evaluate  # noqa: E402

CACHE = ROOT / "bench" / "out" / "maps_scale"
SIZES = (320, 384, 448, 512)
OUTPUTS = 7


def free_size_session(model_path: Path, threads: int = 2) -> ort.InferenceSession:
    """An ONNX Runtime session of ``model_path`` whose input height and width are free."""
    model = onnx.load(str(model_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, name in zip(dims[2:], ("height", "width"), strict=True):
        dim.ClearField("dim_value")
        dim.dim_param = name
    for output in model.graph.output:
        for i, dim in enumerate(output.type.tensor_type.shape.dim[2:]):
            dim.ClearField("dim_value")
            dim.dim_param = f"{output.name}_{i}"
    del model.graph.value_info[:]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def preprocess(image: Image.Image, size: int) -> np.ndarray:
    """rembg's U²-Net preprocessing at a ``size``×``size`` input."""
    cls = type("Scaled", (U2NetFamily,), {"input_size": (size, size)})
    return cls.preprocess(image)


def maps_for(session: ort.InferenceSession, image: Image.Image, data: bytes) -> dict:
    path = cache_file(CACHE, data)
    if path.exists():
        with np.load(path) as cached:
            return {k: cached[k] for k in cached.files}
    out: dict[str, np.ndarray] = {}
    name = session.get_inputs()[0].name
    for size in SIZES:
        outputs = session.run(None, {name: preprocess(image, size)})
        for i, output in enumerate(outputs[:OUTPUTS]):
            out[f"s{size}_d{i}"] = normalise(output[0, 0]).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)  # type: ignore[arg-type]
    return out


ISNET_CACHE = ROOT / "bench" / "out" / "maps_isnet"


def isnet_map(session: ort.InferenceSession, image: Image.Image, data: bytes, size: int):
    """IS-Net's normalised map at a ``size`` input (rembg's isnet preprocessing: RGB, LANCZOS,
    divide by the maximum, mean 0.5, std 1), cached per photo and size."""
    path = cache_file(ISNET_CACHE / str(size), data)
    if path.exists():
        with np.load(path) as cached:
            return cached["map"]
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    pixels = np.asarray(rgb.resize((size, size), Image.Resampling.LANCZOS), np.float32)
    pixels /= max(float(pixels.max()), 1e-6)
    pixels -= 0.5
    batch = np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis])
    out = normalise(session.run(None, {session.get_inputs()[0].name: batch})[0][0, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, map=out.astype(np.float32))
    return out


def mean_map(maps: list[np.ndarray]) -> np.ndarray:
    """The mean of maps of any sizes, each resized (bilinear) to the largest."""
    side = max(m.shape[0] for m in maps)
    return fuse([m if m.shape[0] == side else cv2.resize(m, (side, side)) for m in maps])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--column", action="append", default=[])
    parser.add_argument("--exact", action="append", default=[], help="maps scored unrefined")
    parser.add_argument("--cache-only", action="store_true")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--isnet", type=Path, help="an IS-Net ONNX file: adds isnet<size> maps")
    parser.add_argument("--isnet-size", type=int, action="append", default=[])
    parser.add_argument("--no-scale", action="store_true", help="skip the u2net size maps")
    args = parser.parse_args(argv)
    settings = load_settings()
    session = free_size_session(Path(settings.model_home) / "u2net.onnx")
    isnet = free_size_session(args.isnet) if args.isnet else None
    columns = ([] if args.no_scale else ["s320_d0"]) + args.column
    results: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for item in load_manifest(args.manifest, limit=args.limit):
        data = item.image_path.read_bytes()
        image = decode_image(data)
        maps = {} if args.no_scale else maps_for(session, image, data)
        if isnet is not None:
            for size in args.isnet_size:
                maps[f"isnet{size}"] = isnet_map(isnet, image, data, size)
        if args.cache_only:
            continue
        truth = np.asarray(Image.open(item.mask_path).convert("L"))
        rgb = np.asarray(image.convert("RGB"))
        if "s320_d0" in maps:
            exact = exact_mask(maps["s320_d0"], image.size)
            results.setdefault("exact u2net", []).append((item.category, evaluate(exact, truth)))
        for column in args.exact:
            prob = mean_map([maps[m] for m in column.split("+")])
            mask = exact_mask(prob, image.size)
            results.setdefault(f"exact {column}", []).append((item.category, evaluate(mask, truth)))
        for column in columns:
            prob = mean_map([maps[m] for m in column.split("+")])
            alpha = refine(rgb, prob)[..., 3]
            results.setdefault(f"refine {column}", []).append(
                (item.category, evaluate(alpha, truth))
            )
    if not args.cache_only:
        report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
