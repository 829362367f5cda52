"""Generate truth for ``refine``: composites with known alpha AND known foreground colour.

    python bench/make_truth.py [--out bench/out/truth] [--per-category 15] [--seed 14]

Writes two splits, ``tune/`` (the only set ``refine``'s settings were chosen on) and
``heldout/`` (never tuned on: other seeds and background photographs), each a folder
with ``manifest.csv`` in ``cutout eval``'s format (``image, mask, category, kind, source,
license`` plus ``foreground``: the true foreground colour as an RGB PNG, meaningful where
the mask is above 0).

Foregrounds are rendered here (4× supersampled: antialiased edges, truly partial thin
strokes), coloured by fills, gradients, shading and textures cut from the backgrounds:
scikit-image's sample photographs (licences per ``skimage.data``'s docstrings, recorded
per item) or generated backdrops. ``I = αF + (1 − α)B`` in 8-bit sRGB, saved as JPEG
quality 95; a product's drop shadow is part of the background.

Categories: ``products`` (bottles, boxes, balls, skimage's horse; shaded, with a drop
shadow), ``logos_graphics`` (flat shapes, rings, letters), ``low_contrast`` (background
pulled towards the edge colour), ``hair`` (silhouettes with sub-pixel strands).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SS = 4  # supersampling factor of the alpha
CATEGORIES = ("products", "logos_graphics", "low_contrast", "hair")
# (name, licence) of skimage.data photographs, per split: the held-out split sees none of
# the tune split's photographs
PHOTOS = {
    "tune": [
        ("coffee", "CC0 (Rachel Michetti, per skimage.data.coffee)"),
        ("chelsea", "CC0 (Stefan van der Walt, per skimage.data.chelsea)"),
        ("camera", "CC0 (Lav Varshney, per skimage.data.camera)"),
    ],
    "heldout": [
        ("astronaut", "public domain (NASA, per skimage.data.astronaut)"),
        ("coins", "no known copyright restrictions (Brooklyn Museum, per skimage.data.coins)"),
        ("retina", "CC0 (Mikael Häggström, per skimage.data.retina)"),
    ],
}
SEEDS = {"tune": 1, "heldout": 2}
HAIR_COLOURS = (  # RGB 0..1, one drawn per ``hair`` item
    [[0.25, 0.16, 0.1], [0.55, 0.4, 0.2], [0.1, 0.08, 0.07], [0.8, 0.65, 0.4], [0.6, 0.25, 0.12]]
)


def _photo(name: str) -> np.ndarray:
    import skimage.data

    pixels = np.asarray(getattr(skimage.data, name)())
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return pixels[..., :3].astype(np.float32) / 255.0


def _fit(pixels: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``pixels`` scaled to cover ``size`` (w, h)."""
    w, h = size
    ph, pw = pixels.shape[:2]
    zoom = max(w / pw, h / ph) * rng.uniform(1.0, 1.6)
    big = Image.fromarray((pixels * 255).astype(np.uint8)).resize(
        (max(w, round(pw * zoom)), max(h, round(ph * zoom))), Image.Resampling.BICUBIC
    )
    x = int(rng.integers(0, big.width - w + 1))
    y = int(rng.integers(0, big.height - h + 1))
    return np.asarray(big.crop((x, y, x + w, y + h)), dtype=np.float32) / 255.0


def _generated_bg(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    w, h = size
    kind = rng.choice(["sweep", "pastel", "noise"])
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    if kind == "sweep":  # a studio sweep: light grey to white
        top, bottom = rng.uniform(0.80, 0.92), rng.uniform(0.95, 1.0)
        bg = np.broadcast_to(top + (bottom - top) * yy, (h, w, 3)).copy()
    elif kind == "pastel":
        colour = rng.uniform(0.7, 1.0, 3).astype(np.float32)
        bg = np.broadcast_to(colour * (0.92 + 0.08 * yy), (h, w, 3)).copy()
    else:  # blurred coloured noise: a textured wall
        small = rng.uniform(0, 1, (h // 24 + 2, w // 24 + 2, 3)).astype(np.float32)
        bg = (
            np.asarray(
                Image.fromarray((small * 255).astype(np.uint8)).resize(
                    (w, h), Image.Resampling.BICUBIC
                ),
                dtype=np.float32,
            )
            / 255.0
        )
        bg = 0.3 + 0.5 * bg + rng.normal(0, 0.02, bg.shape).astype(np.float32)
    return np.clip(bg, 0, 1).astype(np.float32), f"generated {kind} backdrop"


def _supersampled(
    size: tuple[int, int], draw: Callable[[ImageDraw.ImageDraw, int], None]
) -> np.ndarray:
    """Alpha (float 0..1, size w×h) of what ``draw`` paints in white at SS× the size."""
    w, h = size
    canvas = Image.new("L", (w * SS, h * SS), 0)
    draw(ImageDraw.Draw(canvas), SS)
    return np.asarray(canvas.resize(size, Image.Resampling.BOX), dtype=np.float32) / 255.0


def _shaded(size: tuple[int, int], base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A foreground colour field: ``base`` with a lit-from-one-side gradient and grain."""
    w, h = size
    angle = rng.uniform(0, 2 * math.pi)
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    light = 0.75 + 0.25 * (math.cos(angle) * xx + math.sin(angle) * yy)
    field = base[None, None, :] * light[..., None]
    field += rng.normal(0, 0.015, field.shape).astype(np.float32)
    return np.clip(field, 0, 1).astype(np.float32)


Box = tuple[float, float, float, float]  # (w, h, cx, cy) of a product's frame


def _bottle(d: ImageDraw.ImageDraw, s: int, box: Box, rng: np.random.Generator) -> None:
    w, h, cx, cy = box
    bw, bh = w * rng.uniform(0.18, 0.28), h * rng.uniform(0.5, 0.7)
    top = cy - bh / 2
    left, right = (cx - bw / 2) * s, (cx + bw / 2) * s
    d.rounded_rectangle(
        [left, (top + bh * 0.3) * s, right, (cy + bh / 2) * s], radius=bw * 0.3 * s, fill=255
    )
    nw = bw * 0.35
    d.rectangle([(cx - nw / 2) * s, top * s, (cx + nw / 2) * s, (top + bh * 0.35) * s], fill=255)
    d.ellipse([left, (top + bh * 0.15) * s, right, (top + bh * 0.45) * s], fill=255)


def _box(d: ImageDraw.ImageDraw, s: int, box: Box, rng: np.random.Generator) -> None:
    w, h, cx, cy = box
    bw, bh = w * rng.uniform(0.35, 0.55), h * rng.uniform(0.35, 0.55)
    tilt = rng.uniform(-0.3, 0.3)
    cos, sin = math.cos(tilt), math.sin(tilt)
    pts = []
    for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        x, y = dx * bw / 2, dy * bh / 2
        pts.append(((cx + x * cos - y * sin) * s, (cy + x * sin + y * cos) * s))
    d.polygon(pts, fill=255)


def _ball(d: ImageDraw.ImageDraw, s: int, box: Box, rng: np.random.Generator) -> None:
    w, h, cx, cy = box
    r = min(w, h) * rng.uniform(0.2, 0.3)
    d.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=255)


def _mug(d: ImageDraw.ImageDraw, s: int, box: Box, rng: np.random.Generator) -> None:
    w, h, cx, cy = box
    bw, bh = w * rng.uniform(0.3, 0.4), h * rng.uniform(0.35, 0.45)
    d.rounded_rectangle(
        [(cx - bw / 2) * s, (cy - bh / 2) * s, (cx + bw / 2) * s, (cy + bh / 2) * s],
        radius=bw * 0.08 * s,
        fill=255,
    )
    hr = bh * 0.3
    d.ellipse(
        [(cx + bw / 2 - hr) * s, (cy - hr) * s, (cx + bw / 2 + hr) * s, (cy + hr) * s],
        outline=255,
        width=max(1, int(bw * 0.07 * s)),
    )


def _horse(d: ImageDraw.ImageDraw, s: int, box: Box, rng: np.random.Generator) -> None:
    """skimage's horse silhouette (CC0, Andreas Preuss)."""
    import skimage.data

    w, h, cx, cy = box
    horse = ~np.asarray(skimage.data.horse())
    shape = Image.fromarray((horse * 255).astype(np.uint8))
    side = min(w, h) * rng.uniform(0.55, 0.75)
    scale = side * s / max(shape.size)
    shape = shape.resize(
        (round(shape.width * scale), round(shape.height * scale)), Image.Resampling.BILINEAR
    )
    shape = shape.point(lambda v: 255 if v >= 128 else 0)
    d.bitmap((round(cx * s - shape.width / 2), round(cy * s - shape.height / 2)), shape, fill=255)


PRODUCTS = {"bottle": _bottle, "box": _box, "ball": _ball, "horse": _horse, "mug": _mug}


def _product(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    w, h = size
    cx, cy = w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2 + rng.uniform(-0.05, 0.05) * h
    shape = PRODUCTS[str(rng.choice(["bottle", "box", "ball", "horse", "mug"]))]
    return _supersampled(size, lambda d, s: shape(d, s, (w, h, cx, cy), rng))


def _logo(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    w, h = size
    cx, cy = w / 2, h / 2
    r = min(w, h) * rng.uniform(0.22, 0.32)

    def draw(d: ImageDraw.ImageDraw, s: int) -> None:
        kind = rng.choice(["ring", "star", "letters", "badge"])
        if kind == "ring":
            d.ellipse(
                [(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s],
                outline=255,
                width=int(r * rng.uniform(0.15, 0.35) * s),
            )
        elif kind == "star":
            n = int(rng.integers(5, 9))
            pts = []
            for i in range(2 * n):
                rad = r if i % 2 == 0 else r * rng.uniform(0.4, 0.6)
                a = math.pi * i / n - math.pi / 2
                pts.append(((cx + rad * math.cos(a)) * s, (cy + rad * math.sin(a)) * s))
            d.polygon(pts, fill=255)
        elif kind == "letters":
            font = ImageFont.load_default(size=int(r * 0.9 * s))
            text = "".join(rng.choice(list("ABDEGKMQRSWXZ&"), int(rng.integers(2, 4))))
            box = d.textbbox((0, 0), text, font=font)
            d.text(
                (cx * s - (box[0] + box[2]) / 2, cy * s - (box[1] + box[3]) / 2),
                text,
                font=font,
                fill=255,
            )
        else:
            d.rounded_rectangle(
                [(cx - r) * s, (cy - r * 0.6) * s, (cx + r) * s, (cy + r * 0.6) * s],
                radius=r * 0.3 * s,
                fill=255,
            )
            d.ellipse(
                [(cx - r * 0.3) * s, (cy - r * 0.3) * s, (cx + r * 0.3) * s, (cy + r * 0.3) * s],
                fill=0,
            )

    return _supersampled(size, draw)


def _hair(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    w, h = size
    cx, cy = w / 2, h * 0.45
    rx, ry = w * rng.uniform(0.14, 0.2), h * rng.uniform(0.18, 0.24)

    def draw(d: ImageDraw.ImageDraw, s: int) -> None:
        d.ellipse([(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], fill=255)
        # shoulders to the bottom of the frame
        d.rounded_rectangle(
            [(cx - rx * 2.6) * s, (cy + ry * 1.1) * s, (cx + rx * 2.6) * s, (h + 50) * s],
            radius=rx * 1.2 * s,
            fill=255,
        )
        d.rectangle(
            [(cx - rx * 0.5) * s, cy * s, (cx + rx * 0.5) * s, (cy + ry * 1.3) * s], fill=255
        )
        # strands: curved polylines leaving the upper head, under a pixel wide
        for _ in range(int(rng.integers(250, 600))):
            a = rng.uniform(-math.pi * 0.95, -math.pi * 0.05)
            x = cx + rx * 0.9 * math.cos(a)
            y = cy + ry * 0.9 * math.sin(a)
            length = rng.uniform(0.05, 0.2) * h
            direction = a + rng.normal(0, 0.35)
            bend = rng.normal(0, 0.02)
            pts = []
            for _step in range(12):
                pts.append((x * s, y * s))
                x += math.cos(direction) * length / 12
                y += math.sin(direction) * length / 12
                direction += bend
            d.line(pts, fill=255, width=int(rng.integers(1, 5)))

    return _supersampled(size, draw)


def _colour(rng: np.random.Generator, category: str) -> np.ndarray:
    if category == "hair":
        return np.array(rng.choice(HAIR_COLOURS), dtype=np.float32)
    return rng.uniform(0.05, 0.95, 3).astype(np.float32)


def make_item(
    category: str, rng: np.random.Generator, photos: list[tuple[str, str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    """(image, alpha, foreground, source, licence) of one composite, floats 0..1."""
    w, h = int(rng.integers(7, 12)) * 100, int(rng.integers(7, 12)) * 100
    size = (w, h)
    use_photo = category != "products" or rng.random() < 0.5
    if use_photo:
        name, licence = photos[int(rng.integers(0, len(photos)))]
        bg = _fit(_photo(name), size, rng)
        bg_source, bg_licence = f"pypi:scikit-image skimage.data.{name}", licence
    else:
        bg, bg_source = _generated_bg(size, rng)
        bg_licence = "generated (public domain)"
    alpha = {"products": _product, "logos_graphics": _logo, "low_contrast": _logo, "hair": _hair}[
        category
    ](size, rng)
    if category == "low_contrast":
        alpha = np.maximum(alpha, _product(size, rng)) if rng.random() < 0.5 else alpha
    base = _colour(rng, category)
    fg = _shaded(size, base, rng)
    if category == "products" and rng.random() < 0.5:
        # a label or texture: a patch of a photograph on the object
        name, _ = photos[int(rng.integers(0, len(photos)))]
        texture = _fit(_photo(name), size, rng)
        fg = np.clip(0.55 * fg + 0.45 * texture, 0, 1)
    if category == "products":
        # a soft drop shadow on the backdrop: background, as a shop wants it cut away
        shadow = (
            np.asarray(
                Image.fromarray((alpha * 255).astype(np.uint8)).filter(
                    ImageFilter.GaussianBlur(w / 60)
                ),
                dtype=np.float32,
            )
            / 255.0
        )
        shadow = np.roll(shadow, (int(h / 40), int(w / 50)), axis=(0, 1))
        bg = bg * (1 - 0.35 * shadow[..., None])
    if category == "low_contrast":
        # pull the background towards the object's own mean colour: ΔE of a few units
        bg = 0.25 * bg + 0.75 * (base[None, None, :] * 0.9 + rng.normal(0, 0.03, 3))
        bg = np.clip(bg, 0, 1).astype(np.float32)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    source = f"fg: generated by bench/make_truth.py ({category}) | bg: {bg_source}"
    licence = f"fg: generated (public domain) | bg: {bg_licence}"
    return image, alpha, fg, source, licence


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def save_item(
    folder: Path,
    stem: str,
    category: str,
    image: np.ndarray,
    alpha: np.ndarray,
    fg: np.ndarray,
    source: str,
    licence: str,
) -> dict[str, str]:
    """Write one item's photo, truth mask and foreground colour under ``folder``; its
    manifest row."""
    Image.fromarray(_u8(image)).save(folder / f"{stem}.jpg", quality=95)
    Image.fromarray(_u8(alpha)).save(folder / f"{stem}.mask.png")
    Image.fromarray(_u8(fg)).save(folder / f"{stem}.fg.png")
    return {
        "image": f"{stem}.jpg",
        "mask": f"{stem}.mask.png",
        "category": category,
        "kind": "composite",
        "source": source,
        "license": licence,
        "foreground": f"{stem}.fg.png",
    }


def write_split(out: Path, split: str, per_category: int, seed: int) -> Path:
    rng = np.random.default_rng([seed, SEEDS[split]])
    rows = []
    for category in CATEGORIES:
        (out / split / category).mkdir(parents=True, exist_ok=True)
        for i in range(per_category):
            image, alpha, fg, source, licence = make_item(category, rng, PHOTOS[split])
            stem = f"{category}/{split}_{category}_{i:03d}"
            rows.append(save_item(out / split, stem, category, image, alpha, fg, source, licence))
    manifest = out / split / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "truth")
    parser.add_argument("--per-category", type=int, default=15)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    for split in ("tune", "heldout"):
        print(write_split(args.out, split, args.per_category, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
