"""The catalogue options (issue 16) on known masks: parsing, pixels, boxes, ZIP."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from shared.contract.options import Options, parse_options
from shared.contract.optionvalues import Box, Margin
from shared.errors import InvalidOption
from tests.unit.engine_helpers import box_mask, scene
from worker.engine import render as rendering
from worker.engine.compose import (
    alpha_of,
    apply_background,
    naive_cutout,
    place_on_canvas,
    post_process_mask,
    subject_bbox,
)

RED = (220, 30, 30)
SUBJECT = (16, 12, 48, 36)  # the red box of scene()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def mask() -> Image.Image:
    return box_mask((64, 48), SUBJECT)


def box_of(text: str) -> Box:
    box = Box.parse("roi", text)
    assert box is not None
    return box


def margin_of(text: str) -> Margin:
    margin = Margin.parse("crop_margin", text)
    assert margin is not None
    return margin


def render(**values: object) -> rendering.Rendered:
    return rendering.render(scene(), mask(), parse_options(values))


# -- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field", "expected"),
    [
        ({"scale": "50%"}, "scale", 0.5),
        ({"scale": 0.25}, "scale", 0.25),
        ({"scale": "original"}, "scale", None),
        ({"position": "center"}, "position", (0.5, 0.5)),
        ({"position": "0% 100%"}, "position", (0.0, 1.0)),
        ({"position": "25%"}, "position", (0.25, 0.25)),
        ({"position": "original"}, "position", None),
        ({"crop_margin": "30px"}, "crop_margin", "30px 30px 30px 30px"),
        ({"crop_margin": "10px 5%"}, "crop_margin", "10px 5% 10px 5%"),
        ({"crop_margin": "0"}, "crop_margin", None),
        ({"roi": "0% 0% 100% 100%"}, "roi", None),
        ({"roi": "10px 20px 30% 40%"}, "roi", "10px 20px 30% 40%"),
        ({"format": "zip"}, "format", "zip"),
        ({"max_megapixels": "0.25"}, "max_megapixels", 0.25),
        ({"shadow": "true"}, "shadow", True),
    ],
)
def test_catalogue_options_parse_to_canonical_values(
    values: dict[str, object], field: str, expected: object
) -> None:
    options = parse_options(values)
    got = getattr(options, field)
    assert (got.text() if isinstance(got, Box | Margin) else got) == expected
    # a job's stored options parse back to the same value
    assert Options.from_stored(options.stored()) == options


@pytest.mark.parametrize(
    ("values", "option"),
    [
        ({"scale": "5%"}, "scale"),
        ({"scale": "big"}, "scale"),
        ({"position": "150%"}, "position"),
        ({"position": "10% 20% 30%"}, "position"),
        ({"crop_margin": "1px 2px 3px"}, "crop_margin"),
        ({"crop_margin": "60%"}, "crop_margin"),
        ({"roi": "1 2 3"}, "roi"),
        ({"roi": "0% 0% 120% 100%"}, "roi"),
        ({"max_megapixels": "0"}, "max_megapixels"),
        ({"bg_image_url": "ftp://example.com/a.jpg"}, "bg_image_url"),
        ({"bg_image_url": "https://u:p@example.com/a.jpg"}, "bg_image_url"),
        ({"bg_upload_key": "uploads/t/../x"}, "bg_upload_key"),
        ({"bg_color": "#fff000", "bg_image_url": "https://example.com/a"}, "bg_image_url"),
        ({"mask_only": True, "format": "zip"}, "mask_only"),
        ({"mask_only": True, "shadow": True}, "mask_only"),
        ({"format": "jpeg"}, "format"),
    ],
)
def test_bad_catalogue_values_name_the_option(values: dict[str, object], option: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_options(values)
    assert caught.value.extra["option"] == option


def test_jpeg_accepts_a_background_image_instead_of_a_colour() -> None:
    assert parse_options({"format": "jpg", "bg_image_url": "https://example.com/b.jpg"})


def test_margin_sides_are_clamped_to_half_the_subject_and_500px() -> None:
    assert margin_of("10px 10% 10px 10%").pixels((200, 100)) == (10, 20, 10, 20)
    assert margin_of("900px 900px 900px 900px").pixels((2000, 100)) == (50, 500, 50, 500)


def test_roi_box_in_pixels_and_percent() -> None:
    assert box_of("10px 20px 50% 100%").pixels((64, 48)) == (10, 20, 32, 48)


# -- pixels -----------------------------------------------------------------------------


def rembgs_steps(image: Image.Image, mask: Image.Image, options: Options) -> Image.Image:
    """rembg's steps in rembg's order, by hand (worker/engine/compose.py): what render()
    must give when no catalogue option is set."""
    if options.post_process:
        mask = post_process_mask(mask)
    picture = mask if options.mask_only else naive_cutout(image, mask)
    if options.crop or options.canvas:
        box = subject_bbox(alpha_of(picture), options.margin)
        if options.canvas:
            picture = place_on_canvas(picture, box, options.canvas, options.fill)
        elif box is not None:
            picture = picture.crop(box)
    if options.bg_color is not None and not options.mask_only:
        opaque = options.format == "jpeg"  # JPEG has no alpha: the colour is opaque
        colour = (*options.bg_color[:3], 255) if opaque else options.bg_color
        picture = apply_background(picture, colour)
    return picture


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"crop": True},
        {"crop": True, "margin": 3},
        {"canvas": "100x80", "fill": 0.5},
        {"bg_color": "#00ff00"},
        {"mask_only": True, "crop": True},
        {"post_process": True, "bg_color": "#102030", "format": "jpeg"},
    ],
)
def test_without_catalogue_options_render_is_rembgs_steps(values: dict[str, object]) -> None:
    options = parse_options(values)
    expected = rembgs_steps(scene(), mask(), options)
    got = rendering.render(scene(), mask(), options).picture
    assert got.mode == expected.mode
    assert got.size == expected.size
    np.testing.assert_array_equal(pixels(got), pixels(expected))


def test_subject_and_foreground_boxes() -> None:
    rendered = render(crop=True)
    assert rendered.subject == SUBJECT
    assert rendered.foreground == (0, 0, 32, 24)
    assert rendering.subject_fields(rendered.subject, (64, 48), (64, 48)) == {
        "left": 16,
        "top": 12,
        "width": 32,
        "height": 24,
        "share": 0.25,
    }
    # a downscaled run reports the box in the original's pixels
    assert rendering.subject_fields((8, 6, 24, 18), (32, 24), (64, 48))["left"] == 16
    assert rendering.render(scene(), box_mask((64, 48), (0, 0, 0, 0)), Options()).subject is None


def test_roi_removes_the_subject_outside_it() -> None:
    out = render(roi="0px 0px 32px 48px").picture
    alpha = pixels(out)[..., 3]
    assert alpha[20, 20] == 255
    assert alpha[20, 40] == 0


def test_crop_margin_pads_beyond_the_image() -> None:
    subject_mask = box_mask((64, 48), (0, 12, 48, 36))
    options = parse_options({"crop": True, "crop_margin": "10px"})
    out = rendering.render(scene(), subject_mask, options).picture
    assert out.size == (48 + 20, 24 + 20)
    alpha = pixels(out)[..., 3]
    assert alpha[:10].max() == 0
    assert alpha[:, :10].max() == 0
    assert alpha[10, 10] == 255


def test_scale_centres_the_subject_by_default() -> None:
    out = render(scale="50%").picture
    assert out.size == (64, 48)
    # the 32x24 box scaled so its limiting side is half the canvas: 32x24 (width-limited)
    assert out.getchannel("A").getbbox() == (16, 12, 48, 36)
    out = render(scale="100%").picture
    assert out.getchannel("A").getbbox() == (0, 0, 64, 48)


def test_position_moves_the_subject() -> None:
    out = render(position="0% 100%").picture
    assert out.getchannel("A").getbbox() == (0, 24, 32, 48)
    assert tuple(pixels(out)[30, 10]) == (*RED, 255)


def test_canvas_with_scale_and_position() -> None:
    out = render(canvas="200x100", scale="50%", position="100% 0%").picture
    # 32x24 → limiting side 50 px high: 67x50, at the top right
    assert out.size == (200, 100)
    box = out.getchannel("A").getbbox()
    assert box is not None
    assert box[2] == 200
    assert box[1] == 0
    assert box[3] == 50


def test_shadow_darkens_below_the_subject_on_transparent_and_opaque_outputs() -> None:
    plain = pixels(render().picture)
    shaded = pixels(render(shadow=True).picture)
    # the subject itself is unchanged; just below it there is now a soft dark shade
    np.testing.assert_array_equal(shaded[20, 30], plain[20, 30])
    assert plain[37, 32, 3] == 0
    assert 0 < shaded[37, 32, 3] < 255
    assert shaded[37, 32, :3].max() == 0  # black shade
    white = pixels(render(shadow=True, bg_color="#ffffff").picture)
    assert white[37, 32, 3] == 255
    assert white[37, 32, 0] < 255
    assert tuple(white[2, 2]) == (255, 255, 255, 255)


def test_background_image_covers_the_canvas() -> None:
    backdrop = Image.new("RGB", (10, 40), (0, 200, 0))
    backdrop.paste((0, 0, 250), (0, 20, 10, 40))
    options = parse_options({"bg_image_url": "https://example.com/b.png"})
    out = pixels(rendering.render(scene(), mask(), options, backdrop).picture)
    assert out.shape == (48, 64, 4)
    assert (out[..., 3] == 255).all()
    assert tuple(out[20, 30][:3]) == RED
    # scaled to cover 64 wide (×6.4 → 256 tall), centre-cropped: the seam is mid-height
    assert tuple(out[2, 2][:3]) == (0, 200, 0)
    assert tuple(out[46, 2][:3]) == (0, 0, 250)
    with pytest.raises(ValueError, match="background"):
        rendering.render(scene(), mask(), options)


def test_fit_megapixels_downscales_only_larger_images() -> None:
    image = Image.new("RGB", (2000, 1000))
    assert rendering.fit_megapixels(image, 0.5).size == (1000, 500)
    assert rendering.fit_megapixels(image, 5).size == (2000, 1000)
    assert rendering.fit_megapixels(image, None) is image


def test_zip_holds_color_jpeg_and_alpha_png_that_compose_to_the_png() -> None:
    picture = render().picture
    data = rendering.encode_output(picture, "zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
        color = Image.open(io.BytesIO(archive.read("color.jpg")))
        alpha = Image.open(io.BytesIO(archive.read("alpha.png")))
        assert color.format == "JPEG"
        assert color.mode == "RGB"
        assert alpha.format == "PNG"
        assert alpha.mode == "L"
        np.testing.assert_array_equal(pixels(alpha), pixels(picture)[..., 3])
        # JPEG is lossy: the colour is close, not equal
        diff = np.abs(pixels(color) - pixels(picture)[..., :3])
        assert diff[14:34, 18:46].max() <= 8


def test_background_decode_errors_name_the_background() -> None:
    from shared.errors import UnsupportedFormat

    with pytest.raises(UnsupportedFormat, match=r"^the background image: "):
        rendering.decode_background(b"plain text, not a picture", 100, 100)


def test_scale_implies_centre_unless_position_original() -> None:
    off_centre = box_mask((64, 48), (0, 0, 16, 12))
    centred = rendering.render(scene(), off_centre, parse_options({"scale": "50%"})).picture
    assert centred.getchannel("A").getbbox() == (16, 12, 48, 36)
    options = parse_options({"scale": "50%", "position": "original"})
    assert options.position is None
    kept = rendering.render(scene(), off_centre, options).picture
    # 16x12 scaled to 32x24 around its old centre (8, 6), clipped by the canvas
    assert kept.getchannel("A").getbbox() == (0, 0, 24, 18)


@pytest.mark.parametrize(
    ("field", "value", "canonical"),
    [
        # `:g` wrote these as 1e-05px and 1e+06px, which the worker refused: accepted at
        # submit, failed later (invalid_option on a value the client never sent)
        ("crop_margin", "0.00002px", None),  # rounds to no margin at all
        ("crop_margin", 0.00002, None),
        ("crop_margin", "0.123456px 5%", "0.1235px 5% 0.1235px 5%"),
        ("crop_margin", 1e20, "1000000px 1000000px 1000000px 1000000px"),
        ("roi", "0 0 1000000 1000000", "0px 0px 1000000px 1000000px"),
        ("roi", "0.00002 0 123456789012 5%", "0px 0px 1000000px 5%"),
    ],
)
def test_lengths_have_a_canonical_text_that_parses_again(
    field: str, value: object, canonical: str | None
) -> None:
    options = parse_options({field: value})
    got = getattr(options, field)
    assert (None if got is None else got.text()) == canonical
    assert options.stored()[field] == canonical
    assert Options.from_stored(options.stored()) == options


def test_huge_lengths_still_mean_the_whole_image() -> None:
    assert box_of("0px 0px 1000000px 5%").pixels((64, 48)) == (0, 0, 64, 2)
    assert margin_of("1000000px 1000000px 1000000px 1000000px").pixels((2000, 100)) == (
        50,
        500,
        50,
        500,
    )


@pytest.mark.parametrize("key", ["uploads/t/\ud800", "uploads/t/caf\u00e9", "uploads/t/a\nb"])
def test_upload_keys_are_printable_ascii(key: str) -> None:
    # a lone surrogate reached botocore in the worker, which could not encode it: the job
    # failed with processing_failed instead of a refusal at submit
    with pytest.raises(InvalidOption) as caught:
        parse_options({"bg_upload_key": key})
    assert caught.value.extra["option"] == "bg_upload_key"


def test_refined_colours_are_cleared_where_a_later_mask_hides_them() -> None:
    # refine estimates a colour for every pixel; roi and post_process make pixels
    # transparent afterwards, and their colours must not survive there
    colours = scene().convert("RGBA")
    out = rendering.render(
        scene(), mask(), parse_options({"roi": "0px 0px 32px 48px"}), colours=colours
    ).picture
    rgba = pixels(out)
    hidden = rgba[..., 3] == 0
    assert hidden.any()
    assert (rgba[hidden] == 0).all()
    assert (rgba[20, 20] == (220, 30, 30, 255)).all()  # inside the roi: the colours stay


def test_roi_clears_colours_of_an_alpha_matted_cutout() -> None:
    # alpha matting estimates a foreground colour everywhere, as rembg's does
    options = parse_options({"alpha_matting": True, "roi": "0px 0px 32px 48px"})
    rgba = pixels(rendering.render(scene(), mask(), options).picture)
    assert (rgba[:, 32:] == 0).all()
