"""Truth and cached model maps for the quality score (docs/quality.md).

    python bench/quality_data.py [--make] [--maps] [--eval]

``--make`` writes the generated truth under ``bench/out/quality/truth/`` with the
project's generators, each in two splits with disjoint foregrounds, seeds and background
photographs: ``train`` (the only split the score's weights and flag thresholds are fitted
on) and ``heldout`` (never fitted on):

- ``gen``: bench/make_truth.py (procedural products, logos, low contrast, hair; 12 per
  category per split, and 8 more per category for train from another seed);
- ``emoji``: bench/make_truth_emoji.py (Fluent Emoji 3D, MIT; 30 per category per split,
  and the train pool's next 20 per category, as far as it goes, for train);
- ``icons``: bench/make_truth_icons.py (simple-icons, CC0-1.0; 15 per category per split,
  and the train pool's next 15 per category for train);
- ``watches``: testkit/vertical.py (generated watches with distractors; 80, half each, and
  50 more of another seed for train).

415 photos for train, 238 held out.

``--maps`` runs every model output the score may use once per photo and caches it in
``bench/out/quality/maps/`` (float16, keyed by the photo's bytes): ``u2net`` (rembg's
model, the job's map), ``u2netp`` and ``u2netp_flip`` (a mirrored pass, un-mirrored), and
``u2net_s224`` (u2net at a 224×224 input). ``--eval`` does the same for the team's
evaluation set (the check nothing is fitted on, reported only at the end; a folder with
``gt/manifest.csv`` and ``real/horses/manifest.csv``, not in the repository: set
``CUTOUT_EVAL_DIR`` to it; bench/evalset.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from evalset import need  # noqa: E402

from shared.contract.settings import load_settings  # noqa: E402
from worker.engine import Engine, decode_image  # noqa: E402
from worker.engine.families import U2NetFamily  # noqa: E402
from worker.eval.manifest import load_manifest  # noqa: E402
from worker.eval.metrics import iou  # noqa: E402

OUT = ROOT / "bench" / "out" / "quality"
TRUTH = OUT / "truth"
MAPS = OUT / "maps"
SEED = 26
SPLITS = ("train", "heldout")
MAP_NAMES = ("u2net", "u2netp", "u2netp_flip", "u2net_s224")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One photo with its truth: where it came from, its cached maps and label."""

    source: str  # gen, emoji, icons, watches; gt, horses (the evaluation set)
    split: str
    category: str
    image_path: Path
    mask_path: Path


def make(out: Path = TRUTH) -> None:
    """Write every generated split (see the module's docstring)."""
    import make_truth
    import make_truth_emoji
    import make_truth_icons

    from testkit import vertical

    emoji = make_truth_emoji.pools(make_truth_emoji.assets(), SEED)
    icons_folder = make_truth_icons.package()
    icons = make_truth_icons.pools(icons_folder, SEED)
    for split in ("tune", "heldout"):
        print(make_truth.write_split(out / "gen", split, 12, SEED))
        print(make_truth_emoji.write_split(out / "emoji", split, emoji[split], 30, SEED))
        print(
            make_truth_icons.write_split(out / "icons", split, icons_folder, icons[split], 15, SEED)
        )
    print(vertical.write(out / "watches", 80, SEED, test_share=0.5))
    # more for train only: other seeds, the train pools' next foregrounds
    more = SEED + 1
    print(make_truth.write_split(out / "gen_more", "tune", 8, more))
    print(make_truth_emoji.write_split(out / "emoji_more", "tune", emoji["tune"], 20, more, 30))
    print(
        make_truth_icons.write_split(
            out / "icons_more", "tune", icons_folder, icons["tune"], 15, more, 15
        )
    )
    print(vertical.write(out / "watches_more", 50, more, test_share=0.0))


def manifests(split: str) -> Iterator[tuple[str, Path]]:
    """(source, manifest) of a generated split, or of the evaluation set (``eval``)."""
    if split == "eval":
        yield "gt", need("gt") / "manifest.csv"
        yield "horses", need("real/horses") / "manifest.csv"
        return
    folder = {"train": "tune", "heldout": "heldout"}[split]
    for source in ("gen", "emoji", "icons"):
        yield source, TRUTH / source / folder / "manifest.csv"
        if split == "train":
            yield source, TRUTH / f"{source}_more" / folder / "manifest.csv"
    yield "watches", TRUTH / "watches" / ("train.csv" if split == "train" else "test.csv")
    if split == "train":
        yield "watches", TRUTH / "watches_more" / "train.csv"


def samples(split: str) -> list[Sample]:
    """Every sample of ``split`` (``train``, ``heldout`` or ``eval``)."""
    out = []
    for source, manifest in manifests(split):
        for item in load_manifest(manifest):
            category = item.category if source != "watches" else "watch"
            out.append(Sample(source, split, category, item.image_path, item.mask_path))
    return out


def cache_path(sample: Sample) -> Path:
    digest = hashlib.sha256(sample.image_path.read_bytes()).hexdigest()[:20]
    return MAPS / f"{digest}.npz"


class Runner:
    """The sessions that make the cached maps (built on first use)."""

    def __init__(self, threads: int = 2) -> None:
        from refine_scale import free_size_session

        self.engine = Engine(load_settings().model_home, threads=threads)
        home = Path(load_settings().model_home)
        self.engine.warm(["u2net", "u2netp"])
        self.small = free_size_session(home / "u2net.onnx", threads=threads)

    def maps(self, image: Image.Image) -> dict[str, np.ndarray]:
        """The raw (un-normalised) first outputs of every map in :data:`MAP_NAMES`."""
        from refine_scale import preprocess

        batch = U2NetFamily.preprocess(image)
        out = {"u2net": self._run(self.engine.session("u2net"), batch)[0, 0]}
        pair = np.concatenate([batch, batch[..., ::-1].copy()])
        both = self._run(self.engine.session("u2netp"), pair)
        out["u2netp"], out["u2netp_flip"] = both[0, 0], both[1, 0][:, ::-1]
        small = preprocess(image, 224)
        out["u2net_s224"] = self._run(self.small, small)[0, 0]
        return out

    @staticmethod
    def _run(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
        name = session.get_inputs()[0].name
        return session.run([session.get_outputs()[0].name], {name: batch})[0]


def load(sample: Sample, runner: Runner | None = None) -> dict[str, np.ndarray] | None:
    """The cached maps and label (``iou``: exact u2net against truth) of ``sample``,
    computed now when ``runner`` is given and they are missing; None otherwise."""
    path = cache_path(sample)
    if path.exists():
        with np.load(path) as cached:
            return {k: cached[k].astype(np.float32) for k in cached.files}
    if runner is None:
        return None
    image = decode_image(sample.image_path.read_bytes())
    raw = runner.maps(image)
    mask = np.asarray(U2NetFamily.postprocess(raw["u2net"][None, None], image.size))
    truth = np.asarray(Image.open(sample.mask_path).convert("L"))
    out = {k: v.astype(np.float16) for k, v in raw.items()}
    out["iou"] = np.float32(iou(mask, truth))  # type: ignore[assignment]
    MAPS.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)  # type: ignore[arg-type]
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def photo320(sample: Sample) -> np.ndarray:
    """The photo as the model saw it: 320×320 RGB uint8 (rembg's LANCZOS resize)."""
    image = decode_image(sample.image_path.read_bytes()).convert("RGB")
    return np.asarray(image.resize(U2NetFamily.input_size, Image.Resampling.LANCZOS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--make", action="store_true", help="write the generated truth")
    parser.add_argument("--maps", action="store_true", help="cache the generated splits' maps")
    parser.add_argument("--eval", action="store_true", help="cache the evaluation set's maps")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.make:
        make()
    splits = [*(SPLITS if args.maps else ()), *(("eval",) if args.eval else ())]
    runner = Runner(args.threads) if splits else None
    for split in splits:
        items = samples(split)
        for i, sample in enumerate(items):
            load(sample, runner)
            if i % 25 == 0:
                print(f"{split}: {i}/{len(items)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
