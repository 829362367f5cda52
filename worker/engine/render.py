"""From (image, mask, options) to the final picture: :func:`render`, the one render path.
A job (:meth:`Engine.process`), a corrected mask's re-render (worker/engine/rerender.py),
``cutout remove`` and ``cutout eval`` (:meth:`Engine.render_assessed`) all render here.
Besides rembg's steps (worker/engine/compose.py) it applies the catalogue outputs (issue
16): region of interest, crop margins, subject scale and position, drop shadow,
background image; and it encodes (ZIP of colour + alpha too) and gives the subject's box.

With none of the catalogue options set it runs rembg's steps in rembg's order, so the
default output stays rembg's (tests/integration/test_parity.py). The order:

1. ``post_process`` (rembg's), then ``roi``: the mask is zeroed outside the region.
2. the cutout (mask, refine's colours, alpha matting or rembg's plain cutout), and the
   subject's box.
3. geometry: ``crop`` (+ ``margin`` or ``crop_margin``) or ``canvas``; then ``scale`` /
   ``position`` move the subject's box within that canvas.
4. ``shadow`` under the subject, then the background (``bg_color`` or the image).

Memory: nothing here makes the output larger than the input, except ``canvas`` (its own
cap) and ``crop_margin`` (at most 500 px per side, half the subject's size). Each step
holds at most two output-sized RGBA images and one output-sized 8-bit layer at a time;
the background image is decoded under the same pixel limits as inputs.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import zipfile
from typing import Any

from PIL import Image, ImageFilter

from shared.contract.options import Options
from shared.contract.optionvalues import Box as Region
from shared.contract.optionvalues import Margin
from shared.errors import CutoutError
from worker.engine.compose import (
    alpha_of,
    apply_background,
    naive_cutout,
    place_on_canvas,
    post_process_mask,
    refined_cutout,
    subject_bbox,
)
from worker.engine.imageio import JPEG_QUALITY, decode_image, encode_image, encode_png
from worker.engine.matting import alpha_matting_cutout

log = logging.getLogger("cutout.engine")

Box = tuple[int, int, int, int]  # left, top, right, bottom

#: the drop shadow: opacity, blur radius and downward offset as shares of the subject's
#: box (its larger side for the blur, its height for the offset)
SHADOW_OPACITY = 0.5
SHADOW_BLUR = 0.03
SHADOW_OFFSET = 0.02


@dataclasses.dataclass
class Rendered:
    """The final picture, the subject's box in the processed image (None: no subject)
    and the subject's box in the picture (the foreground, remove.bg's X-Foreground-*)."""

    picture: Image.Image
    subject: Box | None
    foreground: Box | None


def decode_background(data: bytes, max_pixels: int, max_side: int) -> Image.Image:
    """The background image's bytes decoded under the input's limits; its errors say
    that it is the background (InvalidImage, UnsupportedFormat, ImageTooLarge)."""
    try:
        return decode_image(data, max_pixels=max_pixels, max_side=max_side)
    except CutoutError as exc:
        raise type(exc)(f"the background image: {exc.message}", **exc.extra) from None


def fit_megapixels(image: Image.Image, megapixels: float | None) -> Image.Image:
    """``image`` downscaled (Lanczos, aspect kept) to at most ``megapixels`` million
    pixels; unchanged when it is already small enough or no cap is set."""
    if not megapixels:
        return image
    width, height = image.size
    limit = megapixels * 1_000_000
    if width * height <= limit:
        return image
    factor = math.sqrt(limit / (width * height))
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def apply_roi(mask: Image.Image, roi: Region | None) -> Image.Image:
    """``mask`` with everything outside the region of interest set to 0."""
    if not roi:
        return mask
    box = roi.pixels(mask.size)
    out = Image.new("L", mask.size, 0)
    if box[2] > box[0] and box[3] > box[1]:
        out.paste(mask.crop(box), box[:2])
    return out


def clear_outside(picture: Image.Image, box: tuple[int, int, int, int]) -> None:
    """Make everything of the RGBA ``picture`` outside ``box`` transparent black, in place:
    what ``roi`` excludes must not survive in the colour channels (alpha matting
    estimates a colour for every pixel)."""
    width, height = picture.size
    left, top, right, bottom = box
    if right <= left or bottom <= top:
        left = top = right = bottom = 0
    for rect in (
        (0, 0, width, top),
        (0, bottom, width, height),
        (0, top, left, bottom),
        (right, top, width, bottom),
    ):
        if rect[2] > rect[0] and rect[3] > rect[1]:
            picture.paste((0, 0, 0, 0), rect)


def cutout(
    image: Image.Image,
    mask: Image.Image,
    options: Options,
    colours: Image.Image | None = None,
) -> Image.Image:
    """Step 2 of :func:`render`: the mask, the alpha-matted or the plain cutout (with
    ``colours``, refine's RGBA cutout, given ``mask`` as its alpha in place)."""
    if options.mask_only:
        return mask
    if colours is not None:
        return refined_cutout(colours, mask)
    if options.alpha_matting:
        try:
            return alpha_matting_cutout(
                image,
                mask,
                options.alpha_matting_foreground_threshold,
                options.alpha_matting_background_threshold,
                options.alpha_matting_erode_size,
            )
        except ValueError as exc:
            log.info("alpha matting gave up (%s); plain cutout instead", exc)
    return naive_cutout(image, mask)


def crop_with_margin(picture: Image.Image, box: Box, margin: Margin) -> Image.Image:
    """The subject's ``box`` grown by the ``crop_margin``; beyond the image the
    margin is transparent (black for a mask)."""
    top, right, bottom, left = margin.pixels((box[2] - box[0], box[3] - box[1]))
    return picture.crop((box[0] - left, box[1] - top, box[2] + right, box[3] + bottom))


def place(
    picture: Image.Image,
    box: Box,
    scale: float | None,
    position: tuple[float, float] | None,
) -> Image.Image:
    """The subject's ``box`` moved on a transparent canvas of ``picture``'s size.

    ``scale``: its limiting side fills that share of the canvas (None: its size stays);
    ``position``: where it goes, (0, 0) the top left corner, (1, 1) the bottom right
    (None: centred on where it was when scaled, else where it was).
    """
    width, height = picture.size
    region = picture.crop(box)
    box_w, box_h = region.size
    if scale is not None:
        factor = min(scale * width / box_w, scale * height / box_h)
        size = (max(1, round(box_w * factor)), max(1, round(box_h * factor)))
        if size != region.size:
            region = region.resize(size, Image.Resampling.LANCZOS)
    new_w, new_h = region.size
    if position is None:
        centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        left, top = round(centre_x - new_w / 2), round(centre_y - new_h / 2)
    else:
        left = round(position[0] * (width - new_w))
        top = round(position[1] * (height - new_h))
    out = Image.new(picture.mode, picture.size, 0)
    out.paste(region, (left, top))
    return out


def drop_shadow(picture: Image.Image, box: Box | None) -> Image.Image:
    """``picture`` (RGBA) over a soft black shadow of its own alpha, blurred and moved
    down by a share of the subject's box; RGBA of the same size."""
    if box is None:
        return picture
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    radius = max(2.0, SHADOW_BLUR * max(box_w, box_h))
    offset = max(1, round(SHADOW_OFFSET * box_h))
    alpha = picture.getchannel("A")
    shifted = Image.new("L", picture.size, 0)
    shifted.paste(alpha, (0, offset))
    shade = shifted.filter(ImageFilter.GaussianBlur(radius)).point(
        lambda v: int(v * SHADOW_OPACITY)
    )
    shadow = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    shadow.putalpha(shade)
    return Image.alpha_composite(shadow, picture)


def cover(background: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``background`` scaled to cover ``size`` (aspect kept) and centre-cropped; RGBA.
    An image of exactly that size is used as it is (remove.bg's rule)."""
    background = background.convert("RGBA")
    if background.size == size:
        return background
    width, height = size
    factor = max(width / background.width, height / background.height)
    scaled = (
        max(width, round(background.width * factor)),
        max(height, round(background.height * factor)),
    )
    background = background.resize(scaled, Image.Resampling.LANCZOS)
    left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
    return background.crop((left, top, left + width, top + height))


def render(
    image: Image.Image,
    mask: Image.Image,
    options: Options,
    background: Image.Image | None = None,
    colours: Image.Image | None = None,
) -> Rendered:
    """The final picture for ``options`` and the subject's boxes (see the module doc).

    ``background`` is the decoded ``bg_image_url`` / ``bg_upload_key`` image; a
    background option without it raises ValueError (the caller fetches it). ``colours``:
    refine's RGBA cutout (worker.engine.refine.refine_image), changed in place.
    """
    if options.post_process:
        mask = post_process_mask(mask)
    mask = apply_roi(mask, options.roi)
    picture = cutout(image, mask, options, colours)
    if options.roi and picture.mode == "RGBA":
        clear_outside(picture, options.roi.pixels(picture.size))
    subject = subject_bbox(alpha_of(picture))
    if options.crop or options.canvas:
        if options.canvas:
            if options.scale is None and options.position is None:
                grown = subject_bbox(alpha_of(picture), options.margin)
                picture = place_on_canvas(picture, grown, options.canvas, options.fill)
            else:
                picture = _on_canvas(picture, subject, options)
        elif subject is not None:
            if options.crop_margin:
                picture = crop_with_margin(picture, subject, options.crop_margin)
            else:
                picture = picture.crop(subject_bbox(alpha_of(picture), options.margin) or subject)
    if (options.scale is not None or options.position is not None) and not options.canvas:
        current = subject_bbox(alpha_of(picture))
        if current is not None:
            picture = place(picture, current, options.scale, options.position)
    foreground = subject_bbox(alpha_of(picture))
    if options.mask_only:
        return Rendered(picture, subject, foreground)
    if options.shadow:
        picture = drop_shadow(picture.convert("RGBA"), foreground)
    if options.bg_image_url or options.bg_upload_key:
        if background is None:
            raise ValueError("a background image option needs the fetched background")
        picture = Image.alpha_composite(cover(background, picture.size), picture.convert("RGBA"))
    elif options.bg_color is not None:
        color = options.bg_color
        if options.format == "jpeg":
            color = color._replace(alpha=255)  # JPEG has no alpha: the colour is opaque
        picture = apply_background(picture, color)
    return Rendered(picture, subject, foreground)


def _on_canvas(picture: Image.Image, subject: Box | None, options: Options) -> Image.Image:
    """``canvas`` with ``scale`` / ``position``: scale replaces ``fill``, position the
    centring."""
    assert options.canvas is not None
    mode = "L" if picture.mode == "L" else "RGBA"
    if subject is None:
        return Image.new(mode, options.canvas, 0)
    grown = subject_bbox(alpha_of(picture), options.margin) or subject
    region = picture.crop(grown)
    board = Image.new(mode, options.canvas, 0)
    scale = options.scale if options.scale is not None else options.fill
    factor = min(scale * board.width / region.width, scale * board.height / region.height)
    size = (max(1, round(region.width * factor)), max(1, round(region.height * factor)))
    region = region.resize(size, Image.Resampling.LANCZOS)
    x, y = options.position if options.position is not None else (0.5, 0.5)
    board.paste(region, (round(x * (board.width - size[0])), round(y * (board.height - size[1]))))
    return board


def encode_output(picture: Image.Image, fmt: str) -> bytes:
    """``picture`` encoded as ``fmt``; ``zip`` is remove.bg's ZIP format: ``color.jpg``
    (the RGB channels, JPEG) and ``alpha.png`` (the alpha matte, 8-bit greyscale)."""
    if fmt != "zip":
        return encode_image(picture, fmt)
    rgba = picture.convert("RGBA")
    color = io.BytesIO()
    rgba.convert("RGB").save(color, "JPEG", quality=JPEG_QUALITY)
    alpha = encode_png(rgba.getchannel("A"))
    out = io.BytesIO()
    # both members are compressed already: stored, not deflated again
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("color.jpg", color.getvalue())
        archive.writestr("alpha.png", alpha)
    return out.getvalue()


def subject_fields(
    subject: Box | None, processed: tuple[int, int], original: tuple[int, int]
) -> dict[str, Any] | None:
    """``result.subject``: the box in the original's pixels (the input before any
    ``max_megapixels`` downscale) and the share of the image it covers."""
    if subject is None:
        return None
    fx, fy = original[0] / processed[0], original[1] / processed[1]
    left, top = math.floor(subject[0] * fx), math.floor(subject[1] * fy)
    right = min(original[0], math.ceil(subject[2] * fx))
    bottom = min(original[1], math.ceil(subject[3] * fy))
    width, height = right - left, bottom - top
    return {
        "left": left,
        "top": top,
        "width": width,
        "height": height,
        "share": round(width * height / (original[0] * original[1]), 4),
    }


def box_fields(box: Box | None) -> dict[str, int] | None:
    """``result.foreground``: a box in the result's pixels."""
    if box is None:
        return None
    return {"left": box[0], "top": box[1], "width": box[2] - box[0], "height": box[3] - box[1]}
