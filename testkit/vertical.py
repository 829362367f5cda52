"""A generated vertical: wristwatches on varied product-photo backgrounds, exact masks.

Every picture is drawn here with Pillow and numpy (no outside material; licence: the
project's own, MIT). Each watch (strap, case, bezel, dial, hands, crown) is drawn at twice
the size and reduced, so its edge is anti-aliased; the truth mask is that same coverage,
so it is exact. What makes the set a *vertical* (and hard for a general model): soft cast
shadows, backgrounds close to the watch's colours, and distractor objects (coins, boxes,
cards) that are not the product and so not in the mask.

``python -m testkit.vertical OUT --n 120 --seed 1`` writes ``OUT/images/*.jpg``,
``OUT/masks/*.png`` and manifests ``train.csv`` / ``test.csv`` (``--test-share``, a seeded
split) and ``all.csv`` in ``cutout eval``'s format.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

METALS = [(200, 200, 205), (212, 175, 55), (180, 120, 90), (60, 60, 65), (230, 230, 225)]
STRAPS = [(90, 55, 30), (30, 30, 30), (150, 110, 70), (20, 40, 90), (200, 200, 205), (120, 20, 30)]
DIALS = [(245, 245, 240), (20, 20, 25), (25, 50, 110), (235, 225, 200), (40, 90, 60)]


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int = 18) -> tuple[int, ...]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _background(w: int, h: int, rng: random.Random, near: tuple[int, ...]) -> Image.Image:
    kind = rng.choice(["gradient", "stripes", "noise", "near", "clutter"])
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.array(
        near if kind == "near" else [rng.randint(30, 240) for _ in range(3)], dtype=np.float32
    )
    other = np.array([rng.randint(30, 240) for _ in range(3)], dtype=np.float32)
    t = (x * math.cos(rng.random() * 6) + y * math.sin(rng.random() * 6)) / max(w, h)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = base * (1 - t[..., None]) + other * t[..., None] * (0.3 if kind == "near" else 1.0)
    if kind == "near":
        img = img / 1.3 + base * 0.3 / 1.3
    if kind == "stripes":
        period = rng.uniform(6, 30)
        img += 25 * np.sin((x + y * rng.uniform(-1, 1)) / period)[..., None]
    np_rng = np.random.default_rng(rng.randrange(1 << 30))
    img += np_rng.normal(0, rng.uniform(2, 12), img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if kind == "clutter":
        draw = ImageDraw.Draw(out)
        for _ in range(rng.randint(5, 15)):
            x0, y0 = rng.randrange(w), rng.randrange(h)
            s = rng.randint(8, 60)
            draw.rectangle((x0, y0, x0 + s, y0 + s * rng.uniform(0.3, 1.5)), fill=_rand_rgb(rng))
    return out


def _rand_rgb(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def _distractors(img: Image.Image, rng: random.Random, avoid: tuple[float, float, float]) -> None:
    """Coins, boxes and cards beside the watch (background: not in the mask)."""
    draw = ImageDraw.Draw(img)
    w, h = img.size
    cx, cy, r = avoid
    for _ in range(rng.randint(0, 3)):
        for _try in range(10):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            s = rng.uniform(0.06, 0.16) * min(w, h)
            if math.hypot(x - cx, y - cy) > r + s * 1.5:
                break
        else:
            continue
        colour = _jitter(rng.choice(METALS + STRAPS), rng, 30)
        if rng.random() < 0.5:
            draw.ellipse((x - s, y - s, x + s, y + s), fill=colour, outline=(0, 0, 0))
        else:
            draw.rectangle((x - s, y - s * 0.6, x + s, y + s * 0.6), fill=colour)


def _watch(size: int, rng: random.Random) -> tuple[Image.Image, Image.Image]:
    """An RGB picture of one watch and its coverage (L), ``size``² pixels, drawn at 2×."""
    s = size * 2
    fg = Image.new("RGB", (s, s), (0, 0, 0))
    cover = Image.new("L", (s, s), 0)
    d, m = ImageDraw.Draw(fg), ImageDraw.Draw(cover)
    c = s / 2
    r = s * rng.uniform(0.18, 0.26)
    strap_w = r * rng.uniform(0.8, 1.2)
    strap_len = s * rng.uniform(0.3, 0.48)
    strap = _jitter(rng.choice(STRAPS), rng)
    metal = _jitter(rng.choice(METALS), rng)
    dial = _jitter(rng.choice(DIALS), rng)
    for sign in (-1, 1):
        box = (c - strap_w / 2, c, c + strap_w / 2, c + sign * strap_len)
        box = (box[0], min(box[1], box[3]), box[2], max(box[1], box[3]))
        d.rounded_rectangle(box, radius=strap_w * 0.2, fill=strap)
        m.rounded_rectangle(box, radius=strap_w * 0.2, fill=255)
        # strap holes / stitching
        for k in range(3):
            yy = c + sign * (r + (k + 1) * strap_len * 0.15)
            d.ellipse((c - 4, yy - 4, c + 4, yy + 4), fill=tuple(v // 2 for v in strap))
    crown = (c + r * 0.95, c - r * 0.12, c + r * 1.18, c + r * 0.12)
    d.rectangle(crown, fill=metal)
    m.rectangle(crown, fill=255)
    d.ellipse((c - r, c - r, c + r, c + r), fill=metal)
    m.ellipse((c - r, c - r, c + r, c + r), fill=255)
    inner = r * rng.uniform(0.78, 0.88)
    d.ellipse((c - inner, c - inner, c + inner, c + inner), fill=dial)
    tick = tuple(255 - v for v in dial)
    for k in range(12):
        a = k * math.pi / 6
        x0, y0 = c + inner * 0.85 * math.cos(a), c + inner * 0.85 * math.sin(a)
        x1, y1 = c + inner * 0.95 * math.cos(a), c + inner * 0.95 * math.sin(a)
        d.line((x0, y0, x1, y1), fill=tick, width=max(2, int(s / 160)))
    for length, width in ((0.5, 6), (0.75, 4)):
        a = rng.random() * 2 * math.pi
        d.line(
            (c, c, c + inner * length * math.cos(a), c + inner * length * math.sin(a)),
            fill=tick,
            width=width,
        )
    # shading: a soft highlight over the whole watch
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    shade = 1.0 + 0.25 * ((c - x) + (c - y)) / s
    arr = np.clip(np.asarray(fg, dtype=np.float32) * shade[..., None], 0, 255).astype(np.uint8)
    fg = Image.fromarray(arr)
    angle = rng.uniform(0, 360)
    fg = fg.rotate(angle, resample=Image.Resampling.BICUBIC)
    cover = cover.rotate(angle, resample=Image.Resampling.BICUBIC)
    return (
        fg.resize((size, size), Image.Resampling.BOX),
        cover.resize((size, size), Image.Resampling.BOX),
    )


def sample(index: int, seed: int) -> tuple[Image.Image, Image.Image]:
    """Picture ``index`` of the set of ``seed``: (RGB photo, L truth mask)."""
    rng = random.Random(seed * 1_000_003 + index)
    w, h = rng.randint(300, 480), rng.randint(280, 440)
    size = int(min(w, h) * rng.uniform(0.7, 1.0))
    watch, cover = _watch(size, rng)
    x0, y0 = rng.randint(0, w - size), rng.randint(0, h - size)
    near = _jitter(rng.choice(STRAPS + METALS), rng, 25)
    photo = _background(w, h, rng, near)
    centre = (x0 + size / 2, y0 + size / 2, size * 0.5)
    _distractors(photo, rng, centre)
    mask = Image.new("L", (w, h), 0)
    mask.paste(cover, (x0, y0))
    # a soft cast shadow: darker background, never part of the mask
    shadow = mask.filter(ImageFilter.GaussianBlur(rng.uniform(4, 12)))
    dx, dy = rng.randint(-12, 12), rng.randint(4, 18)
    shadow = shadow.transform(shadow.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy))
    darken = 1 - np.asarray(shadow, dtype=np.float32)[..., None] / 255 * rng.uniform(0.3, 0.6)
    photo = Image.fromarray((np.asarray(photo, dtype=np.float32) * darken).astype(np.uint8))
    layer = Image.new("RGB", (w, h))
    layer.paste(watch, (x0, y0))
    photo = Image.composite(layer, photo, mask)
    return photo, mask


def write(out: Path, n: int, seed: int, test_share: float = 0.5) -> dict[str, Path]:
    """Write ``n`` pictures and their manifests; returns the manifests' paths by split."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        photo, mask = sample(i, seed)
        image_rel, mask_rel = f"images/watch_{i:04d}.jpg", f"masks/watch_{i:04d}.png"
        photo.save(out / image_rel, quality=92)
        mask.save(out / mask_rel)
        rows.append(
            {
                "image": image_rel,
                "mask": mask_rel,
                "category": "watch",
                "source": f"testkit/vertical.py seed={seed} index={i}",
                "license": "generated (MIT, the project's)",
            }
        )
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_test = round(n * test_share)
    test_ids = set(order[:n_test])
    paths = {}
    for split, keep in (
        ("all", lambda i: True),
        ("train", lambda i: i not in test_ids),
        ("test", lambda i: i in test_ids),
    ):
        path = out / f"{split}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for i, r in enumerate(rows) if keep(i))
        paths[split] = path
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test-share", type=float, default=0.5)
    args = parser.parse_args()
    for split, path in write(args.out, args.n, args.seed, args.test_share).items():
        print(split, path)


if __name__ == "__main__":
    main()
