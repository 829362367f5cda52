"""What one job may cost: the canvas against CUTOUT_MAX_PIXELS, alpha matting's input
against CUTOUT_MAX_MATTING_PIXELS (shared/contract/limits.py), pure."""

from __future__ import annotations

import pytest

from shared.contract.limits import check_input, check_options, job_bytes
from shared.contract.options import parse_options
from shared.contract.settings import load_settings
from shared.errors import ImageTooLarge, InvalidOption

LIMITS = load_settings({}, max_pixels=50_000_000, max_matting_pixels=500_000)


def test_canvas_is_bounded_by_the_output_pixels() -> None:
    check_options(parse_options({"canvas": "7071x7071"}), LIMITS)  # 49,999,041 pixels
    check_options(parse_options({"canvas": "10000x5000"}), LIMITS)  # exactly the limit
    with pytest.raises(InvalidOption) as refused:
        check_options(parse_options({"canvas": "10000x10000"}), LIMITS)
    assert refused.value.extra["option"] == "canvas"
    assert "100,000,000 pixels" in refused.value.message
    assert "CUTOUT_MAX_PIXELS" in refused.value.message
    with pytest.raises(InvalidOption):
        check_options(parse_options({"canvas": "7072x7071"}), LIMITS)


def test_other_options_never_grow_the_output() -> None:
    for values in ({}, {"crop": True, "margin": 10_000}, {"post_process": True}):
        check_options(parse_options(values), LIMITS)


def test_alpha_matting_is_bounded_by_its_input_pixels() -> None:
    matting = parse_options({"alpha_matting": True, "alpha_matting_erode_size": 255})
    check_input(matting, (1000, 500), LIMITS)
    with pytest.raises(ImageTooLarge) as refused:
        check_input(matting, (1000, 501), LIMITS)
    assert "CUTOUT_MAX_MATTING_PIXELS" in refused.value.message
    # without matting (or when only the mask is asked for, which skips it) the input
    # limits alone apply
    check_input(parse_options({}), (7000, 7000), LIMITS)
    check_input(parse_options({"alpha_matting": True, "mask_only": True}), (7000, 7000), LIMITS)
    # max_megapixels downscales the input before matting
    capped = parse_options({"alpha_matting": True, "max_megapixels": 0.5})
    check_input(capped, (4000, 3000), LIMITS)


def test_the_matting_limit_is_a_setting() -> None:
    assert load_settings({}).max_matting_pixels == 16_000_000
    assert load_settings({"CUTOUT_MAX_MATTING_PIXELS": "2M"}).max_matting_pixels == 2_000_000


def test_a_job_is_bounded_as_a_whole() -> None:
    # each option within its own limit, together over the per-job memory bound
    plain = parse_options({})
    check_input(plain, (10_000, 5_000), LIMITS)  # a 50 MP input alone fits
    on_canvas = parse_options({"canvas": "7071x7071"})
    check_input(on_canvas, (1, 1), LIMITS)
    check_input(on_canvas, (4000, 3000), LIMITS)  # 12 MP on a 50 MP canvas
    with pytest.raises(ImageTooLarge) as refused:
        check_input(on_canvas, (10_000, 5_000), LIMITS)
    assert "CUTOUT_MAX_JOB_MEMORY" in refused.value.message
    assert "canvas 7071x7071" in refused.value.message
    # a background image of known size counts too
    check_input(on_canvas, (1, 1), LIMITS, background=(7071, 7071))
    with pytest.raises(ImageTooLarge):
        check_input(on_canvas, (5000, 5000), LIMITS, background=(7071, 7071))
    # refine adds a fixed coarse grid and strip: a 50 MP input fits, and what tips a job
    # over the bound is counted
    check_input(parse_options({"refine": True}), (10_000, 5_000), LIMITS)
    check_input(parse_options({"canvas": "3000x2500"}), (10_000, 5_000), LIMITS)
    with pytest.raises(ImageTooLarge) as refused:
        check_input(parse_options({"refine": True, "canvas": "3000x2500"}), (10_000, 5_000), LIMITS)
    assert "refine" in refused.value.message


def test_a_phone_photo_is_matted_within_the_job_bound_at_the_defaults() -> None:
    """Matting solves its band a box at a time: 0.6 GB at most plus 16 B per pixel. A
    1000×1000 marketplace photo and a 12 MP phone photo fit the defaults (0.5 MP and
    3 kB per pixel refused both before); what tips a matting job over is named."""
    defaults = load_settings({})
    matting = parse_options({"alpha_matting": True})
    check_input(matting, (1000, 1000), defaults)
    check_input(matting, (4032, 3024), defaults)
    assert job_bytes(matting, (4032, 3024)) < 1_300_000_000
    # a small picture counts at most what its whole solve costs
    assert job_bytes(matting, (100, 100)) < job_bytes(parse_options({}), (100, 100)) + 40_000_000
    with pytest.raises(ImageTooLarge) as refused:
        check_input(matting, (4000, 4001), defaults)
    assert "CUTOUT_MAX_MATTING_PIXELS" in refused.value.message
    with pytest.raises(ImageTooLarge) as refused:
        check_input(
            parse_options({"alpha_matting": True, "canvas": "7071x7071"}), (4000, 3000), defaults
        )
    assert "CUTOUT_MAX_JOB_MEMORY" in refused.value.message
    assert "alpha_matting" in refused.value.message


def test_the_job_estimate_grows_with_every_buffer() -> None:
    base = job_bytes(parse_options({}), (1000, 1000))
    assert job_bytes(parse_options({"refine": True}), (1000, 1000)) > base
    assert job_bytes(parse_options({"alpha_matting": True}), (1000, 1000)) > base
    assert job_bytes(parse_options({"canvas": "1000x1000"}), (1000, 1000)) > base
    assert job_bytes(parse_options({}), (1000, 1000), background=(1000, 1000)) > base
    assert job_bytes(parse_options({}), (2000, 1000)) > base


def test_the_job_bound_is_a_setting() -> None:
    assert load_settings({}).max_job_bytes == 1_900_000_000
    assert load_settings({"CUTOUT_MAX_JOB_MEMORY": "3GB"}).max_job_bytes == 3_000_000_000
