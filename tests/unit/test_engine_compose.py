"""The options on known masks: what the pixels must be (render() is pure, no model)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shared.contract.options import Options, parse_options
from tests.unit.engine_helpers import alpha_bbox, box_mask, scene
from worker.engine.compose import (
    SUBJECT_ALPHA_THRESHOLD,
    naive_cutout,
    post_process_mask,
    subject_bbox,
)
from worker.engine.render import render

RED, BLUE = (220, 30, 30), (20, 40, 200)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def picture(image: Image.Image, mask: Image.Image, options: Options) -> Image.Image:
    """The final picture of ``image`` cut out by ``mask``: the render path's."""
    return render(image, mask, options).picture


def soft_mask() -> Image.Image:
    """255 in the red box, 128 on a 2-pixel ring around it, 0 elsewhere."""
    mask = np.zeros((48, 64), np.uint8)
    mask[10:38, 14:50] = 128
    mask[12:36, 16:48] = 255
    return Image.fromarray(mask)


def test_plain_cutout_is_rembgs_composite() -> None:
    out = picture(scene(), soft_mask(), Options())
    assert out.mode == "RGBA"
    assert out.size == (64, 48)
    p = pixels(out)
    assert tuple(p[24, 32]) == (*RED, 255)
    assert tuple(p[2, 2]) == (0, 0, 0, 0)
    # Pillow's paste through the mask scales colour and alpha alike (rembg's output)
    assert tuple(p[11, 32]) == (10, 20, 100, 128)
    np.testing.assert_array_equal(p[..., 3], pixels(soft_mask()))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
@pytest.mark.parametrize("strip_rows", [1, 7])
def test_plain_cutout_in_strips_is_rembgs_composite_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, mode: str, strip_rows: int
) -> None:
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)).convert(mode)
    mask = Image.fromarray(rng.integers(0, 256, (45, 61), dtype=np.uint8))
    rembg = Image.composite(image, Image.new("RGBA", image.size, 0), mask)
    monkeypatch.setattr("worker.engine.compose.CUTOUT_STRIP_PIXELS", 61 * strip_rows)
    out = naive_cutout(image, mask)
    assert out.mode == "RGBA"
    assert out.tobytes() == rembg.tobytes()


def test_cutout_of_an_image_with_alpha_multiplies_both() -> None:
    rgba = scene().convert("RGBA")
    rgba.putalpha(100)
    out = naive_cutout(rgba, soft_mask())
    assert pixels(out)[24, 32, 3] == 100
    assert pixels(out)[11, 32, 3] == 50  # 100 * 128 / 255


def test_mask_only_is_the_mask() -> None:
    out = picture(scene(), soft_mask(), Options(mask_only=True))
    assert out.mode == "L"
    np.testing.assert_array_equal(pixels(out), pixels(soft_mask()))


def test_mask_only_ignores_bg_color() -> None:
    out = picture(scene(), soft_mask(), Options(mask_only=True, bg_color=(0, 255, 0, 255)))
    assert out.mode == "L"


def test_post_process_removes_specks_and_hardens_edges() -> None:
    mask = np.array(soft_mask())
    mask[3, 3] = 255  # a lone speck
    mask[40:44, 2:6] = 100  # a faint blob
    out = post_process_mask(Image.fromarray(mask))
    p = pixels(out)
    assert set(np.unique(p)) <= {0, 255}
    assert p[3, 3] == 0
    assert p[42, 4] == 0
    assert p[24, 32] == 255
    assert p[2, 60] == 0
    result = picture(scene(), Image.fromarray(mask), Options(post_process=True))
    assert set(np.unique(pixels(result)[..., 3])) <= {0, 255}


def test_bg_color_is_composited_and_opaque() -> None:
    out = picture(scene(), soft_mask(), Options(bg_color=(0, 255, 0, 255)))
    p = pixels(out)
    assert out.mode == "RGBA"
    assert (p[..., 3] == 255).all()
    assert tuple(p[2, 2]) == (0, 255, 0, 255)
    assert tuple(p[24, 32]) == (*RED, 255)
    # the half-transparent ring: half the (scaled) colour over half the green
    assert np.abs(p[11, 32, :3] - (5, 137, 50)).max() <= 1


def test_translucent_bg_color_keeps_its_alpha_for_png_but_not_jpeg() -> None:
    colour = (0, 0, 255, 128)
    png = picture(scene(), box_mask((64, 48), (16, 12, 48, 36)), Options(bg_color=colour))
    assert tuple(pixels(png)[2, 2]) == colour
    jpeg = picture(
        scene(),
        box_mask((64, 48), (16, 12, 48, 36)),
        parse_options({"format": "jpeg", "bg_color": "0,0,255,128"}),
    )
    assert tuple(pixels(jpeg)[2, 2]) == (0, 0, 255, 255)


def test_crop_to_the_subject() -> None:
    out = picture(scene(), box_mask((64, 48), (16, 12, 48, 36)), Options(crop=True))
    assert out.size == (32, 24)
    assert (pixels(out)[..., 3] == 255).all()
    assert tuple(pixels(out)[0, 0]) == (*RED, 255)


def test_crop_with_margin_is_clamped_to_the_image() -> None:
    mask = box_mask((64, 48), (16, 12, 48, 36))
    assert picture(scene(), mask, Options(crop=True, margin=5)).size == (42, 34)
    # 20 px of margin reaches past the left (16), top (12) and bottom (36+20 > 48) edges
    assert picture(scene(), mask, Options(crop=True, margin=20)).size == (64, 48)


def test_crop_ignores_faint_haze() -> None:
    mask = np.array(box_mask((64, 48), (16, 12, 48, 36)))
    mask[0:4, 0:64] = SUBJECT_ALPHA_THRESHOLD  # haze at the threshold does not count
    out = picture(scene(), Image.fromarray(mask), Options(crop=True))
    assert out.size == (32, 24)


def test_crop_without_a_subject_keeps_the_image() -> None:
    out = picture(scene(), Image.new("L", (64, 48), 0), Options(crop=True))
    assert out.size == (64, 48)


def test_crop_of_the_mask() -> None:
    out = picture(scene(), soft_mask(), Options(crop=True, mask_only=True))
    assert out.mode == "L"
    assert out.size == (36, 28)


def test_subject_bbox() -> None:
    assert subject_bbox(box_mask((10, 10), (2, 3, 5, 7))) == (2, 3, 5, 7)
    assert subject_bbox(box_mask((10, 10), (2, 3, 5, 7)), margin=1) == (1, 2, 6, 8)
    assert subject_bbox(Image.new("L", (10, 10), 0)) is None


def test_canvas_scales_and_centres_the_subject() -> None:
    # a 32x24 subject on a 200x100 canvas at fill 0.5: height limits (24 -> 50), width 67
    out = picture(
        scene(),
        box_mask((64, 48), (16, 12, 48, 36)),
        Options(canvas=(200, 100), fill=0.5),
    )
    assert out.size == (200, 100)
    assert out.mode == "RGBA"
    left, top, right, bottom = alpha_bbox(out)
    assert (bottom - top, right - left) == (50, 67)
    assert (top, left) == (25, 66)
    assert tuple(pixels(out)[0, 0]) == (0, 0, 0, 0)
    assert np.abs(pixels(out)[50, 100] - (*RED, 255)).max() <= 1


def test_canvas_with_bg_color_and_default_fill() -> None:
    out = picture(
        scene(),
        box_mask((64, 48), (16, 12, 48, 36)),
        Options(canvas=(100, 100), bg_color=(255, 255, 255, 255)),
    )
    p = pixels(out)
    assert (p[..., 3] == 255).all()
    assert tuple(p[0, 0]) == (255, 255, 255, 255)
    # width limits: 32 -> 85 (0.85 of 100)
    red = (np.abs(p[..., :3] - RED).max(axis=2) <= 2).any(axis=0)
    assert 83 <= red.sum() <= 86


def test_canvas_with_margin_shrinks_the_subject() -> None:
    mask = box_mask((64, 48), (16, 12, 48, 36))
    plain = picture(scene(), mask, Options(canvas=(100, 100), fill=1.0))
    padded = picture(scene(), mask, Options(canvas=(100, 100), fill=1.0, margin=8))
    width = alpha_bbox(plain)[2] - alpha_bbox(plain)[0]
    assert width == 100
    assert alpha_bbox(padded)[2] - alpha_bbox(padded)[0] < width


def test_canvas_without_a_subject_is_empty() -> None:
    out = picture(scene(), Image.new("L", (64, 48), 0), Options(canvas=(30, 20)))
    assert out.size == (30, 20)
    assert alpha_bbox(out) is None


def test_canvas_of_the_mask_is_greyscale() -> None:
    out = picture(scene(), soft_mask(), Options(canvas=(100, 50), mask_only=True))
    assert out.mode == "L"
    assert out.size == (100, 50)


@pytest.mark.slow
def test_alpha_matting_refines_a_soft_mask() -> None:
    # numba compiles pymatting on first use: tens of seconds once per machine
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:48] = 255
    mask[10:12, 14:50] = 90  # a band the trimap leaves unknown
    options = Options(alpha_matting=True, alpha_matting_erode_size=3)
    out = picture(scene(), Image.fromarray(mask), options)
    p = pixels(out)
    assert out.mode == "RGBA"
    assert p[24, 32, 3] == 255
    assert np.abs(p[24, 32, :3] - RED).max() <= 2
    assert p[2, 2, 3] == 0
    # the unknown band over the blue background is matted out as background
    assert p[10, 32, 3] < 30


def test_alpha_matting_without_a_foreground_falls_back_to_the_plain_cutout() -> None:
    mask = Image.new("L", (64, 48), 0)
    out = picture(scene(), mask, Options(alpha_matting=True))
    assert out.mode == "RGBA"
    assert pixels(out).max() == 0
