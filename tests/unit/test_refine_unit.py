"""``refine``'s pieces on synthetic pictures with known answers (no model weights)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from shared.contract.options import Options, parse_options
from shared.errors import InvalidOption
from worker.engine.refine import (
    RefineParams,
    fuse,
    guided_coefficients,
    normalise,
    pull_push,
    refine,
    refine_image,
    refine_picture,
    refine_probability,
)
from worker.engine.render import render
from worker.eval.methods import build_methods
from worker.eval.metrics import boundary_f1, iou

FG, BG = np.array([230, 40, 30], np.float32), np.array([30, 160, 60], np.float32)


def disc_scene(
    size: int = 400, radius: float = 120.0, soft: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, truth alpha 0..1): a red disc with an antialiased edge on green."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    dist = np.hypot(xx - size / 2 + 0.5, yy - size / 2 + 0.5)
    alpha = np.clip((radius - dist) / soft + 0.5, 0, 1)
    rgb = alpha[..., None] * FG + (1 - alpha[..., None]) * BG
    return np.rint(rgb).astype(np.uint8), alpha


def blurry_probability(alpha: np.ndarray, side: int = 320) -> np.ndarray:
    """What U²-Net gives: the truth at 320×320 (so blurred on the way back up)."""
    small = Image.fromarray((alpha * 255).astype(np.uint8)).resize((side, side), Image.BILINEAR)
    blurred = small.resize((side // 4, side // 4), Image.BILINEAR).resize((side, side))
    return np.asarray(blurred, np.float32) / 255.0


def test_normalise_is_rembgs_min_max_and_zero_for_a_constant() -> None:
    out = normalise(np.array([[2.0, 4.0], [6.0, 4.0]]))
    assert out.tolist() == [[0.0, 0.5], [1.0, 0.5]]
    assert not normalise(np.full((3, 3), 7.0)).any()


def test_fuse_is_the_mean() -> None:
    a, b = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    assert np.allclose(fuse([a, b, b]), 2 / 3)
    with pytest.raises(ValueError, match="nothing"):
        fuse([])


def test_guided_filter_of_a_linear_function_of_the_guide_is_that_function() -> None:
    rng = np.random.default_rng(0)
    guide = rng.uniform(0, 1, (40, 50, 3)).astype(np.float32)
    p = 0.2 * guide[..., 0] + 0.5 * guide[..., 2] + 0.1
    coef = guided_coefficients(guide, p, radius=3, eps=1e-8)
    q = np.einsum("hwc,hwc->hw", coef[..., :3], guide) + coef[..., 3]
    assert np.abs(q - p).max() < 1e-3


def test_pull_push_fills_from_the_weighted_pixels() -> None:
    values = np.zeros((32, 32, 3), np.float32)
    values[:, :8] = (1.0, 0.5, 0.25)
    weights = np.zeros((32, 32), np.float32)
    weights[:, :8] = 1.0
    filled = pull_push(values, weights)
    # known pixels keep their value, the far side gets the only colour there is
    assert np.allclose(filled[:, :8], (1.0, 0.5, 0.25), atol=1e-4)
    assert np.allclose(filled[:, 30], (1.0, 0.5, 0.25), atol=0.02)


def test_refine_snaps_a_blurred_edge_to_the_photo() -> None:
    rgb, truth = disc_scene()
    # blurred and under-confident: its 0.5 contour lies a few pixels inside the disc
    prob = blurry_probability(truth) ** 2
    t8 = (truth * 255).astype(np.uint8)
    plain = np.asarray(
        Image.fromarray((prob * 255).astype(np.uint8)).resize((400, 400), Image.LANCZOS)
    )
    out = refine(rgb, prob)
    assert out.shape == (400, 400, 4)
    assert out.dtype == np.uint8
    assert iou(out[..., 3], t8) > iou(plain, t8)
    assert boundary_f1(out[..., 3], t8, tolerance=1) > boundary_f1(plain, t8, tolerance=1)
    assert np.abs(out[..., 3].astype(int) - t8).mean() < np.abs(plain.astype(int) - t8).mean()


def test_refine_removes_the_old_background_from_edge_colours() -> None:
    rgb, truth = disc_scene(soft=4.0)
    out = refine(rgb, blurry_probability(truth))
    edge = (truth > 0.05) & (truth < 0.95) & (out[..., 3] > 0)
    assert edge.sum() > 100
    colours = out[..., :3][edge].astype(np.float32)
    naive = rgb[edge].astype(np.float32)  # rembg keeps the photo's mixed colour
    error_refined = np.abs(colours - FG).mean()
    error_naive = np.abs(naive - FG).mean()
    assert error_refined < error_naive / 2


def test_small_specks_go_a_second_subject_stays() -> None:
    prob = np.zeros((320, 320), np.float32)
    prob[40:200, 40:200] = 1.0  # the subject
    prob[60:180, 230:300] = 1.0  # a second subject, half the first one's area
    prob[280:284, 280:284] = 1.0  # a speck
    rgb = np.full((320, 320, 3), 128, np.uint8)
    alpha = refine(rgb, prob, RefineParams(speck_fraction=0.02))[..., 3]
    assert alpha[100, 100] == 255
    assert alpha[120, 260] == 255
    assert alpha[281, 281] == 0
    kept = refine(rgb, prob, RefineParams(speck_fraction=0.0))[..., 3]
    assert kept[281, 281] > 0


def test_refine_is_strip_invariant_and_handles_odd_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    rgb, truth = disc_scene(size=300)
    rgb = rgb[:, :217]  # not square, not a multiple of anything
    prob = blurry_probability(truth[:, :217])
    whole = refine(rgb, prob)
    monkeypatch.setattr("worker.engine.refine.STRIP_PIXELS", 37 * 217)  # 37 rows a strip
    assert np.array_equal(refine(rgb, prob), whole)


def test_large_photos_use_the_coarse_grid() -> None:
    rgb, truth = disc_scene(size=900, radius=300)
    prob = blurry_probability(truth)
    out = refine(rgb, prob, RefineParams(coarse_side=256))
    t8 = (truth * 255).astype(np.uint8)
    assert iou(out[..., 3], t8) > 0.99


def test_fully_transparent_pixels_carry_no_colour() -> None:
    rgb, truth = disc_scene()
    out = refine(rgb, blurry_probability(truth))
    assert not out[..., :3][out[..., 3] == 0].any()


def test_refine_probability_by_default_is_u2nets_normalised_map() -> None:
    def infer(model: str, batch: np.ndarray) -> np.ndarray:
        assert model == "u2net"
        assert batch.shape == (1, 3, 320, 320)
        return np.linspace(2, 4, 320 * 320, dtype=np.float32).reshape(1, 1, 320, 320)

    prob = refine_probability(Image.new("RGB", (50, 40), "white"), infer)
    assert prob.min() == 0.0
    assert prob.max() == 1.0


def test_refine_probability_runs_each_model_once_with_the_flip_in_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("worker.engine.refine.FUSION", ("u2net", "u2netp", "u2netp_flip"))
    calls: list[tuple[str, int]] = []

    def infer(model: str, batch: np.ndarray) -> np.ndarray:
        calls.append((model, batch.shape[0]))
        assert batch.shape[1:] == (3, 320, 320)
        # a map that is bright on the left: its flip must come back to the left
        out = np.zeros((batch.shape[0], 1, 320, 320), np.float32)
        out[0, 0, :, :100] = 1.0
        if batch.shape[0] == 2:
            out[1, 0, :, -100:] = 1.0
        return out

    prob = refine_probability(Image.new("RGB", (50, 40), "white"), infer)
    assert sorted(calls) == [("u2net", 1), ("u2netp", 2)]
    assert prob.shape == (320, 320)
    assert prob[:, :100].min() == 1.0
    assert prob[:, 100:].max() == 0.0


def test_render_uses_refines_colours_and_alpha() -> None:
    rgb, truth = disc_scene(size=64, radius=20)
    image = Image.fromarray(rgb)
    mask, colours = refine_image(image, blurry_probability(truth))
    out = render(image, mask, Options(refine=True), colours=colours).picture
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(mask))
    only = render(image, mask, Options(refine=True, mask_only=True), colours=colours)
    assert only.picture.mode == "L"


def test_the_option_parses_and_refuses_what_it_replaces() -> None:
    assert parse_options({"refine": "true"}).refine is True
    assert parse_options({}).refine is False
    assert parse_options({"refine": True}).stored()["refine"] is True
    for other in ({"fast": True}, {"alpha_matting": "1"}):
        with pytest.raises(InvalidOption) as caught:
            parse_options({"refine": "on", **other})
        assert caught.value.extra["option"] == "refine"
    with pytest.raises(InvalidOption):
        parse_options({"refine": "maybe"})


def test_eval_option_refine_gives_exact_and_refined_columns() -> None:
    methods = build_methods(["u2net"], ["refine=true"], [], [])
    assert [m.name for m in methods] == ["u2net", "u2net+refine"]
    exact, refined = methods[0].options, methods[1].options
    assert exact is not None
    assert not exact.refine
    assert refined is not None
    assert refined.refine
    # the eval-only guided filter keeps its name
    guided = build_methods(["u2net"], ["refine=guided"], [], [])
    assert [m.name for m in guided] == ["u2net"]
    assert guided[0].refine is not None


def test_api_remove_takes_refine_as_a_field_or_query_value() -> None:
    from api.rembg_compat import rembg_options

    assert rembg_options({"refine": "true"}).refine is True
    assert rembg_options({"om": "true", "refine": "1"}).mask_only is True
    assert rembg_options({}).refine is False


@pytest.mark.parametrize(
    ("size", "coarse"),
    [
        ((453, 311), (211, 145)),  # OpenCV's separable area filter (rounded half to even)
        ((454, 312), (227, 156)),  # a factor of 2: its block averages (rounded half up)
        ((453, 312), (151, 104)),  # a factor of 3
    ],
)
def test_the_coarse_grid_read_in_strips_is_the_whole_arrays_area_average(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int], coarse: tuple[int, int]
) -> None:
    from worker.engine.refine import _coarse_guide

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    whole = cv2.resize(rgb, coarse, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    monkeypatch.setattr("worker.engine.refine.STRIP_PIXELS", size[0] * 7)  # 7 rows a strip
    assert np.array_equal(_coarse_guide(Image.fromarray(rgb), *coarse), whole)


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK"])
def test_any_mode_is_refined_as_its_rgb_conversion(mode: str) -> None:
    rgb, truth = disc_scene(size=200, radius=60)
    image = Image.fromarray(rgb).convert(mode)
    prob = blurry_probability(truth)
    mask, picture = refine_image(image, prob)
    assert picture.mode == "RGBA"
    assert picture.size == image.size
    expected = refine(np.asarray(image.convert("RGB")), prob)
    assert np.array_equal(np.asarray(picture), expected)
    assert np.array_equal(np.asarray(mask), expected[..., 3])


def test_refines_work_arrays_do_not_grow_with_the_photo() -> None:
    """The numpy arrays refine allocates (the coarse grid, one strip, the row-narrowed
    copy) stay within what shared/contract/limits.py counts for refine at 12 MP, far below a
    per-pixel cost (the pipeline before peaked at 262 MB of them here; this one ~70 MB)."""
    import tracemalloc

    from shared.contract.limits import REFINE_BYTES, REFINE_BYTES_PER_SIDE

    width, height = 4000, 3000
    image = Image.new("RGB", (width, height), tuple(int(c) for c in BG))
    ImageDraw.Draw(image).ellipse((800, 300, 3200, 2700), fill=tuple(int(c) for c in FG))
    truth = np.zeros((320, 320), np.float32)
    yy, xx = np.mgrid[:320, :320]
    truth[(xx - 160) ** 2 / 96**2 + (yy - 160) ** 2 / 128**2 < 1] = 1.0
    prob = blurry_probability(truth)
    tracemalloc.start()
    try:
        picture = refine_picture(image, prob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    alpha = np.asarray(picture.getchannel("A"))
    assert alpha[1500, 2000] == 255
    assert alpha[10, 10] == 0
    assert peak <= REFINE_BYTES + REFINE_BYTES_PER_SIDE * height, f"{peak / 1e6:.0f} MB"
