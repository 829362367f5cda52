"""Alpha matting solved a box at a time (worker/engine/matting.py): the same cutout as
rembg's whole-picture solve, within a small tolerance, in bounded memory; a picture whose
whole solve fits one box gives rembg's bytes exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from shared.contract.limits import MATTING_BOX_BYTES
from worker.engine import matting


def photo_and_mask(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured subject (a blob with a soft, wiggly edge) on a textured background,
    and a mask the way the model gives one: the truth at 320×320, scaled back up."""
    rng = np.random.default_rng(seed)
    truth = Image.new("L", (width * 4, height * 4), 0)
    draw = ImageDraw.Draw(truth)
    angles = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    radius = 0.36 * min(width, height) * 4 * (1 + 0.12 * rng.standard_normal(angles.size))
    cx, cy = width * 2, height * 2
    draw.polygon(
        [
            (cx + r * np.cos(a) * 1.3, cy + r * np.sin(a))
            for a, r in zip(angles, radius, strict=True)
        ],
        fill=255,
    )
    truth = truth.resize((width, height), Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(1))
    alpha = np.asarray(truth, dtype=np.float64)[..., None] / 255
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack(
        [
            90 + 60 * np.sin(xx / 23.0),
            120 + 50 * np.cos(yy / 17.0),
            80 + 40 * np.sin((xx + yy) / 31.0),
        ],
        axis=-1,
    )
    subject = np.stack([200 + 30 * np.sin(yy / 9.0), 60 + 20 * np.cos(xx / 7.0), 40 + 0 * xx], -1)
    noise = rng.normal(0, 4, (height, width, 3))
    rgb = np.clip(alpha * subject + (1 - alpha) * background + noise, 0, 255).astype(np.uint8)
    mask = truth.resize((320, 320), Image.Resampling.BOX).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return rgb, np.asarray(mask)


def rembg(rgb: np.ndarray, mask: np.ndarray, fg: int, bg: int, erode: int) -> np.ndarray:
    """What rembg (and this project before the band was solved in boxes) computed."""
    from pymatting import estimate_alpha_cf, estimate_foreground_ml, stack_images

    trimap = matting.make_trimap(mask, fg, bg, erode)
    image = rgb / 255.0
    alpha = estimate_alpha_cf(image, trimap / 255.0)
    foreground = estimate_foreground_ml(image, alpha)
    cutout = stack_images(foreground, alpha)
    return np.clip(cutout * 255, 0, 255).astype(np.uint8)  # type: ignore[no-any-return]


def differences(tiled: np.ndarray, whole: np.ndarray) -> tuple[int, float, float, float]:
    """Alpha max and mean |Δ| (levels), IoU of alpha ≥ 128, mean |Δ| of premultiplied
    colour (levels)."""
    alpha = np.abs(tiled[..., 3].astype(int) - whole[..., 3].astype(int))
    a, b = tiled[..., 3] >= 128, whole[..., 3] >= 128
    shown = [p[..., :3] * (p[..., 3:] / 255.0) for p in (tiled, whole)]
    return (
        int(alpha.max()),
        float(alpha.mean()),
        float((a & b).sum() / (a | b).sum()),
        float(np.abs(shown[0] - shown[1]).mean()),
    )


@pytest.mark.slow
def test_a_picture_whose_solve_fits_one_box_is_matted_as_rembg_did() -> None:
    rgb, mask = photo_and_mask(160, 120, seed=1)
    out = matting.alpha_matting_cutout(Image.fromarray(rgb), Image.fromarray(mask), 240, 10, 5)
    assert np.array_equal(np.asarray(out), rembg(rgb, mask, 240, 10, 5))


@pytest.mark.slow
@pytest.mark.parametrize("erode", [3, 25])
def test_matting_in_boxes_equals_the_whole_picture_within_a_small_tolerance(
    erode: int,
) -> None:
    # a narrow band (erode 3) and a wide one (25: cells cut through it far from any
    # known pixel, where the coarse alpha carries what lies beyond the cut)
    rgb, mask = photo_and_mask(480, 360, seed=2)
    trimap = matting.make_trimap(mask, 240, 10, erode)
    # a budget that the whole picture exceeds, so that it is solved in several boxes
    budget = 60_000_000
    unknown = trimap == matting.UNKNOWN
    assert matting.box_bytes(unknown.size, int(unknown.sum())) > budget
    area = (0, 0, 480, 360)
    boxes = list(matting.band_boxes(unknown, area, 128, matting.MARGIN, budget))
    assert len(boxes) >= 8
    tiled = matting.matte(rgb, trimap, mask, tile=128, budget=budget)
    whole = matting.solve(rgb, ~unknown, trimap)
    assert np.array_equal(whole, rembg(rgb, mask, 240, 10, erode))
    alpha_max, alpha_mean, iou, colour_mean = differences(tiled, whole)
    # measured: erode 3: 1 level at most, 0.09 levels of colour on average; erode 25:
    # 3 levels at most, 0.01 on average, IoU 0.99996, 0.14 levels of colour
    assert alpha_max <= 6, (alpha_max, alpha_mean, iou, colour_mean)
    assert alpha_mean <= 0.05
    assert iou >= 0.9995
    assert colour_mean <= 0.3
    # away from the band (beyond any box), the trimap: the opaque photo, transparent black
    near = cv2.dilate(unknown.astype(np.uint8), np.ones((129, 129), np.uint8)) > 0
    opaque, clear = (trimap == 255) & ~near, (trimap == 0) & ~near
    assert opaque.any()
    assert clear.any()
    assert np.array_equal(tiled[opaque][:, :3], rgb[opaque])
    assert (tiled[opaque][:, 3] == 255).all()
    assert (tiled[clear] == 0).all()


def test_every_box_is_within_the_budget() -> None:
    """A picture that is all band (a 12 MP grey mask) is cut into boxes whose solve fits
    the budget; a narrow band into few large ones."""
    everything = np.ones((3000, 4000), dtype=bool)
    boxes = list(matting.band_boxes(everything, (0, 0, 4000, 3000), 384, 64, MATTING_BOX_BYTES))
    for _, (left, top, right, bottom) in boxes:
        pixels = (right - left) * (bottom - top)
        assert matting.box_bytes(pixels, pixels) <= MATTING_BOX_BYTES
    # the cells cover the picture exactly once
    cover = np.zeros((3000, 4000), dtype=np.uint8)
    for (left, top, right, bottom), _ in boxes:
        cover[top:bottom, left:right] += 1
    assert (cover == 1).all()
    ring = np.zeros((3000, 4000), dtype=bool)
    ring[1000:1010, 1000:3000] = True
    boxes = list(matting.band_boxes(ring, (0, 0, 4000, 3000), 384, 64, MATTING_BOX_BYTES))
    assert len(boxes) == 6  # one per cell the band crosses
    assert all(box[3] - box[1] == 10 + 2 * 64 for _, box in boxes)


def test_no_foreground_or_background_gives_up_as_rembg_does() -> None:
    image = Image.new("RGB", (600, 600), (10, 200, 30))
    for fill, missing in ((0, "foreground"), (255, "background")):
        with pytest.raises(ValueError, match=f"no {missing}"):
            matting.alpha_matting_cutout(image, Image.new("L", (600, 600), fill), 240, 10, 10)
