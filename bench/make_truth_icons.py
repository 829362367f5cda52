"""Truth for flat logos: brand icons with holes and lettering, on photographs.

    python bench/make_truth_icons.py [--out bench/out/truth3] [--per-category 15]
        [--fresh N]

The foregrounds are the SVG icons of the npm package ``simple-icons@16.37.0`` (licence:
CC0-1.0 for the collection, per its package.json; each icon's own licence, where its data
file names one, is recorded per item; the marks are their owners' trademarks, used here
only to measure). Each icon is rendered in its brand colour with cairosvg (anti-aliased),
so the alpha is exact and the foreground colour is known and flat. Fetched with
``npm pack`` into ``bench/out/pkgs/`` on first use. The icons the team's evaluation set
(not in the repository) uses in its ``gt/`` (:data:`SHARED_SLUGS`) are excluded; the rest
are split at random into two disjoint pools, one per split, and placed on the background
photographs of that split exactly as ``make_truth_emoji.py`` places its foregrounds (same
photographs per split):

- ``logos_graphics``: the icon on a photograph (640×480);
- ``low_contrast``: the same, the background pulled towards the icon's edge colour.

Splits: ``tune/`` and ``heldout/`` (two disjoint icon pools and photograph pools), and,
with ``--fresh N``, ``fresh/``: N more per category from the held-out pool, after the
icons ``heldout/`` used.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_truth_emoji import PKGS, Make, compose, npm_package
from make_truth_emoji import write_split as write_items

PACKAGE = "simple-icons@16.37.0"
#: the icons the team's evaluation set (gt/) uses: never used here
SHARED_SLUGS = frozenset(
    ("activitypub", "apachekafka", "codeberg", "deno", "dotnet", "gnubash", "gulp", "liberapay",
     "storybook")
)  # fmt: skip


def package() -> Path:
    return npm_package(PACKAGE, PKGS / "simple-icons")


def pools(folder: Path, seed: int) -> dict[str, dict[str, list[dict[str, str]]]]:
    """{split: {category: icons}}: the icons (minus the shared set's) split in two halves,
    each half alternating between the two categories."""
    data = json.loads((folder / "data" / "simple-icons.json").read_text())
    icons = [
        d
        for d in sorted(data, key=lambda d: d["slug"])
        if d["slug"] not in SHARED_SLUGS and (folder / "icons" / f"{d['slug']}.svg").is_file()
    ]
    rng = np.random.default_rng(seed)
    order = [icons[i] for i in rng.permutation(len(icons))]
    half = len(order) // 2
    out: dict[str, dict[str, list[dict[str, str]]]] = {}
    for split, part in (("tune", order[:half]), ("heldout", order[half:])):
        out[split] = {"logos_graphics": part[0::2], "low_contrast": part[1::2]}
    return out


def _icon(folder: Path, icon: dict[str, str], height: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha h×w, straight colour h×w×3), floats: the icon rendered ``height`` px high in
    its brand colour, trimmed to its drawn extent."""
    import cairosvg  # bench only: pip install cairosvg (needs the system's libcairo)

    svg = (folder / "icons" / f"{icon['slug']}.svg").read_text()
    svg = svg.replace("<svg ", f'<svg fill="#{icon["hex"]}" ', 1)
    png = cairosvg.svg2png(bytestring=svg.encode(), output_height=height)
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"), np.float32)
    alpha = rgba[..., 3] / 255.0
    ys, xs = np.nonzero(alpha > 0)
    alpha = alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    colour = np.array([int(icon["hex"][i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255
    return alpha.astype(np.float32), np.broadcast_to(colour, (*alpha.shape, 3)).copy()


def _maker(folder: Path) -> Make:
    def make(
        category: str, icon: dict[str, str], pool: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
        image, alpha, fg, bg_source, bg_licence = compose(
            category, lambda h: _icon(folder, icon, h), pool, rng
        )
        licence = (icon.get("license") or {}).get("type", "CC0-1.0 (simple-icons)")
        source = (
            f"fg: npm:{PACKAGE} icons/{icon['slug']}.svg (fill #{icon['hex']}, "
            f"rendered with cairosvg) | bg: {bg_source}"
        )
        return image, alpha, fg, source, f"fg: {licence}; trademark of its owner | bg: {bg_licence}"

    return make


def write_split(
    out: Path,
    split: str,
    folder: Path,
    icons: dict[str, list[dict[str, str]]],
    per: int,
    seed: int,
    skip: int = 0,
) -> Path:
    return write_items(
        out, split, icons, per, seed, skip, _maker(folder), lambda icon: f"icon_{icon['slug']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "truth3")
    parser.add_argument("--per-category", type=int, default=15)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--fresh", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    folder = package()
    split_icons = pools(folder, args.seed)
    if args.fresh:
        manifest = write_split(
            args.out, "fresh", folder, split_icons["heldout"], args.fresh, args.seed,
            args.per_category,
        )  # fmt: skip
        print(manifest)
        return 0
    for split in ("tune", "heldout"):
        print(
            write_split(args.out, split, folder, split_icons[split], args.per_category, args.seed)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
