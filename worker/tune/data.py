"""Training samples: a manifest's photos and masks, augmented, as U²-Net inputs.

The input is built by the engine's own preprocessing (:class:`U2NetFamily`: LANCZOS to
320×320, divide by the maximum, ImageNet normalisation), so the model trains on exactly
what it will see when served. Augmentation suited to product photos, each drawn from a
seeded generator:

- horizontal flip (p=0.5); no vertical flip (products stand upright);
- scale and crop: a random crop of 70–100% of each side, or a zoom-out that pads with a
  colour taken from the photo's border (the subject smaller in the frame);
- colour jitter: brightness, contrast, saturation ±20%;
- background swap (probability ``swap``; 0 by default since real photos measured no
  better with it, docs/tune.md) where the mask allows: only when the mask is nearly binary
  (soft alpha under 3% of the subject), the subject is composited over another training
  photo's background region or a plain/gradient colour.

The same generator state gives the same pairs: a tune is repeatable from its seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from worker.engine.families import U2NetFamily
from worker.engine.imageio import decode_image
from worker.eval.manifest import Item

SIZE = U2NetFamily.input_size


@dataclass
class Sample:
    image: Image.Image  # RGB, the photo's size
    mask: Image.Image  # L, the same size
    hard: bool  # nearly binary mask: its subject may go onto another background


def load_samples(items: Sequence[Item]) -> list[Sample]:
    """Decode every item as the service would (EXIF transpose, RGB); masks as L.

    Raises ValueError naming an item whose mask and photo differ in size.
    """
    out = []
    for item in items:
        image = decode_image(item.image_path.read_bytes()).convert("RGB")
        with Image.open(item.mask_path) as m:
            mask = m.convert("L")
        if mask.size != image.size:
            raise ValueError(f"{item.mask}: mask is {mask.size}, photo {item.image} {image.size}")
        alpha = np.asarray(mask)
        subject = max(int(np.count_nonzero(alpha > 127)), 1)
        soft = int(np.count_nonzero((alpha > 10) & (alpha < 245)))
        out.append(Sample(image, mask, soft / subject < 0.03))
    return out


def to_input(image: Image.Image) -> np.ndarray:
    """The 3×320×320 float32 model input, as the engine computes it."""
    return U2NetFamily.preprocess(image)[0]


def to_target(mask: Image.Image) -> np.ndarray:
    """The 1×320×320 float32 target in 0..1."""
    small = mask.resize(SIZE, Image.Resampling.BILINEAR)
    return (np.asarray(small, dtype=np.float32) / 255.0)[np.newaxis]


def _backdrop(size: tuple[int, int], rng: random.Random, pool: Sequence[Sample]) -> Image.Image:
    if pool and rng.random() < 0.5:
        # a region of another photo where its own mask is empty, stretched to size
        other = rng.choice(pool)
        alpha = np.asarray(other.mask)
        cols = np.where(alpha.max(axis=0) < 10)[0]
        if cols.size > 16:
            x0, x1 = int(cols.min()), int(cols.max())
            return other.image.crop((x0, 0, x1 + 1, other.image.height)).resize(size)
    top = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
    bottom = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
    t = np.linspace(0, 1, size[1], dtype=np.float32)[:, None, None]
    grad = np.broadcast_to(top * (1 - t) + bottom * t, (size[1], size[0], 3))
    return Image.fromarray(grad.astype(np.uint8))


def augment(
    sample: Sample, rng: random.Random, pool: Sequence[Sample] = (), swap: float = 0.0
) -> tuple[Image.Image, Image.Image]:
    """One augmented (photo, mask) pair from ``sample``."""
    image, mask = sample.image, sample.mask
    if sample.hard and swap and rng.random() < swap:
        image = Image.composite(image, _backdrop(image.size, rng, pool), mask)
    if rng.random() < 0.5:
        image, mask = ImageOps.mirror(image), ImageOps.mirror(mask)
    w, h = image.size
    if rng.random() < 0.7:
        cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = image.crop((x0, y0, x0 + cw, y0 + ch))
        mask = mask.crop((x0, y0, x0 + cw, y0 + ch))
    elif rng.random() < 0.5:
        scale = rng.uniform(1.0, 1.4)
        nw, nh = int(w * scale), int(h * scale)
        x0, y0 = rng.randint(0, nw - w), rng.randint(0, nh - h)
        fill = image.getpixel((0, 0))
        canvas, canvas_mask = Image.new("RGB", (nw, nh), fill), Image.new("L", (nw, nh), 0)
        canvas.paste(image, (x0, y0))
        canvas_mask.paste(mask, (x0, y0))
        image, mask = canvas, canvas_mask
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(0.8, 1.2))
    return image, mask


def batch_arrays(
    samples: Sequence[Sample],
    rng: random.Random,
    pool: Sequence[Sample],
    *,
    train: bool,
    swap: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs N×3×320×320 and targets N×1×320×320 (augmented when ``train``)."""
    xs, ys = [], []
    for sample in samples:
        if train:
            image, mask = augment(sample, rng, pool, swap)
        else:
            image, mask = sample.image, sample.mask
        xs.append(to_input(image))
        ys.append(to_target(mask))
    return np.stack(xs), np.stack(ys)
