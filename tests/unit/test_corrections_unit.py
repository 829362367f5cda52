"""Corrected masks without servers: the size rule and the checks of shared/contract/maskcheck.py,
the mask a PNG stands for, and the re-render (worker/engine/rerender.py) on real pixels:
its alpha is the mask, and with ``refine`` the colours at a soft edge are solved
against the nearby background."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shared.contract.limits import JobLimits
from shared.contract.maskcheck import check_mask, fits
from shared.contract.options import parse_options
from shared.errors import CutoutError, ImageTooLarge, MaskSizeMismatch
from worker.engine.rerender import decode_mask, decontaminated, rerender

LIMITS = JobLimits(
    max_pixels=50_000_000, max_matting_pixels=16_000_000, max_job_bytes=1_900_000_000
)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("mask", "image", "ok"),
    [
        ((96, 72), (96, 72), True),
        ((320, 320), (96, 72), True),  # the model's own size, for any input
        ((48, 36), (96, 72), True),
        ((4000, 3000), (96, 72), True),
        ((100, 75), (640, 481), True),  # 481 * 100 / 640 = 75.2: a pixel's rounding
        ((100, 77), (640, 481), False),
        ((72, 72), (96, 72), False),
        ((72, 96), (96, 72), False),  # turned
        ((320, 240), (320, 320), False),
    ],
)
def test_the_size_rule(mask: tuple[int, int], image: tuple[int, int], ok: bool) -> None:
    assert fits(mask, image) is ok


def test_each_refusal_names_the_mask() -> None:
    options = parse_options({})
    grey = png(Image.new("L", (96, 72), 255))
    with pytest.raises(MaskSizeMismatch) as mismatch:
        check_mask(grey, (90, 72), options, LIMITS)
    assert mismatch.value.extra["input_width"] == 90
    small = JobLimits(50_000_000, 16_000_000, max_job_bytes=70_000_000)
    with pytest.raises(ImageTooLarge):  # the job's memory, counting the mask's decode
        check_mask(png(Image.new("L", (4000, 3000))), (96, 72), options, small)
    for bad in (b"", b"GIF89a" + b"\0" * 40, grey[:40]):
        with pytest.raises(CutoutError) as refused:
            check_mask(bad, (96, 72), options, LIMITS)
        assert refused.value.extra["field"] == "mask"
        assert refused.value.message.startswith("the mask")


def test_the_mask_a_png_stands_for() -> None:
    values = np.arange(96 * 72, dtype=np.uint32).reshape(72, 96) % 256
    alpha = values.astype(np.uint8)
    rgba = Image.fromarray(np.dstack([255 - alpha, alpha, alpha, alpha]), "RGBA")
    options = parse_options({})
    assert np.array_equal(np.asarray(decode_mask(png(rgba), (96, 72), options, LIMITS)), alpha)
    grey_alpha = Image.fromarray(np.dstack([255 - alpha, alpha]), "LA")
    assert np.array_equal(
        np.asarray(decode_mask(png(grey_alpha), (96, 72), options, LIMITS)), alpha
    )
    plain = Image.fromarray(alpha, "L")
    assert np.array_equal(np.asarray(decode_mask(png(plain), (96, 72), options, LIMITS)), alpha)
    deep = Image.fromarray((values.astype(np.uint16) * 257).astype(np.uint16))
    assert np.array_equal(np.asarray(decode_mask(png(deep), (96, 72), options, LIMITS)), alpha)
    palette = Image.new("P", (96, 72), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255])
    palette.paste(1, (48, 0, 96, 72))
    palette.info["transparency"] = 0
    got = np.asarray(decode_mask(png(palette), (96, 72), options, LIMITS))
    assert (got[:, :48] == 0).all()
    assert (got[:, 48:] == 255).all()


def scene() -> tuple[Image.Image, Image.Image]:
    """A blue object on the right of a red backdrop, its edge pixels a half-half mix,
    and a mask that is 128 on that edge."""
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[:, :48] = (255, 0, 0)
    rgb[:, 48:] = (0, 0, 255)
    rgb[:, 47:49] = (128, 0, 128)
    mask = np.zeros((64, 96), np.uint8)
    mask[:, 49:] = 255
    mask[:, 47:49] = 128
    return Image.fromarray(rgb), Image.fromarray(mask)


def test_decontamination_solves_the_soft_edge_against_the_backdrop() -> None:
    photo, mask = scene()
    out = np.asarray(decontaminated(photo, mask)).astype(int)
    assert np.array_equal(out[..., 3], np.asarray(mask))
    edge = out[:, 47:49, :3].reshape(-1, 3)
    # the mixed pixel (128, 0, 128) over red is the object's blue, not the fringe
    assert (edge[:, 0] < 40).all()
    assert (edge[:, 2] > 215).all()
    assert (out[:, :47, :3] == 0).all()  # transparent: no colour
    assert (out[:, 49:, :3] == np.asarray(photo)[:, 49:]).all()  # opaque: the photo's


@pytest.mark.parametrize("refine", [False, True])
def test_the_rerender_keeps_the_mask_and_decontaminates_only_for_refine(refine: bool) -> None:
    photo, mask = scene()
    result, stored = rerender(png(photo), png(mask), parse_options({"refine": refine}), LIMITS)
    out = np.asarray(Image.open(io.BytesIO(result.data))).astype(int)
    assert np.array_equal(out[..., 3], np.asarray(mask))
    assert np.array_equal(np.asarray(stored), np.asarray(mask))
    # the plain cutout keeps the edge's red fringe (rembg's cutout scales it by alpha)
    red_at_edge = out[:, 47:49, 0]
    assert (red_at_edge < 40).all() if refine else (red_at_edge > 50).all()
    assert result.input_size == (96, 64)
