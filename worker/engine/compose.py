"""rembg's steps from (image, mask) to a picture, and the geometry they share: pure
functions, no model. :func:`worker.engine.render.render` puts them in order, with the
catalogue's options between them; that order is the only render path.

- ``post_process``: rembg's mask smoothing (opening, Gaussian blur, threshold).
- the cutout: rembg's plain cutout, ``Image.composite(image, transparent, mask)``
  (:func:`naive_cutout`), or refine's colours under the mask (:func:`refined_cutout`);
  alpha matting is worker/engine/matting.py's.
- ``crop`` (+ ``margin``): to the subject's bounding box. The subject is every pixel with
  alpha above :data:`SUBJECT_ALPHA_THRESHOLD` (10 of 255, rembg's default background
  threshold for alpha matting): U²-Net leaves faint haze of a few levels far from the
  subject, which would otherwise stretch the box to the whole image.
- ``canvas`` (+ ``fill``, ``margin``): the subject's box (grown by ``margin``) is scaled so
  that it fills ``fill`` of the canvas along its limiting side, and centred.
- ``bg_color``: the result alpha-composited onto the colour.

rembg differences, on purpose: rembg's background colour is ``paste(img, mask=img)``,
which leaves edge pixels partly transparent even on an opaque colour; we alpha-composite,
so an opaque colour gives an opaque image. Alpha matting converts every mode to RGB first
(rembg passes palette indices or greyscale to pymatting and fails or falls back).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from worker.engine.imageio import row_strips

SUBJECT_ALPHA_THRESHOLD = 10


def post_process_mask(mask: Image.Image) -> Image.Image:
    """rembg's ``post_process``: 3×3 elliptic opening, Gaussian blur σ=2, threshold 127."""
    import cv2

    pixels = np.asarray(mask.convert("L"))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    pixels = cv2.morphologyEx(pixels, cv2.MORPH_OPEN, kernel)
    pixels = cv2.GaussianBlur(pixels, (5, 5), sigmaX=2, sigmaY=2, borderType=cv2.BORDER_DEFAULT)
    return Image.fromarray(np.where(pixels < 127, 0, 255).astype(np.uint8))


#: pixels pasted at once by naive_cutout (whole rows, at least one)
CUTOUT_STRIP_PIXELS = 1 << 20


def naive_cutout(image: Image.Image, mask: Image.Image) -> Image.Image:
    """rembg's plain cutout: RGBA, colours and alpha scaled by the mask.

    rembg calls ``Image.composite(image, transparent, mask)``, which copies the
    transparent picture, converts the whole image to RGBA and pastes it through the mask:
    three full-size RGBA buffers besides the image. Pasting a strip at a time into the
    transparent picture does the same blend on the same pixels (the same bytes) with one."""
    width, height = image.size
    picture = Image.new("RGBA", image.size, 0)
    for y0, y1 in row_strips(width, height, CUTOUT_STRIP_PIXELS):
        box = (0, y0, width, y1)
        picture.paste(image.crop(box), box[:2], mask.crop(box))
    return picture


def refined_cutout(colours: Image.Image, mask: Image.Image) -> Image.Image:
    """``refine``'s cutout with ``mask`` as its alpha: ``colours`` is refine's RGBA result
    (worker.engine.refine.refine_image), changed in place rather than copied (it is the
    largest buffer of the job), or an RGB picture of its colours."""
    picture = colours if colours.mode == "RGBA" else colours.convert("RGB")
    picture.putalpha(mask)
    clear_transparent(picture)
    return picture


def clear_transparent(picture: Image.Image) -> None:
    """Set the colour of ``picture``'s fully transparent pixels to 0, in place, a strip at
    a time, as the plain cutout leaves them: refine's colours are estimated everywhere, so
    where a later mask (``post_process``, ``roi``) made a pixel transparent its colour
    would still show the photo to whoever drops the alpha channel."""
    width, height = picture.size
    for y0, y1 in row_strips(width, height, CUTOUT_STRIP_PIXELS):
        box = (0, y0, width, y1)
        hidden = picture.crop(box).getchannel("A").point(_ZERO_ONLY)
        if hidden.getbbox() is not None:
            picture.paste((0, 0, 0, 0), box, hidden)


#: a point table: 255 where a value is 0, else 0
_ZERO_ONLY = [255] + [0] * 255


def subject_bbox(alpha: Image.Image, margin: int = 0) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom) of pixels above the subject threshold, grown by
    ``margin`` and clamped to the image; None when there is no subject."""
    pixels = np.asarray(alpha)
    rows = np.flatnonzero((pixels > SUBJECT_ALPHA_THRESHOLD).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((pixels[rows[0] : rows[-1] + 1] > SUBJECT_ALPHA_THRESHOLD).any(axis=0))
    width, height = alpha.size
    return (
        max(0, int(cols[0]) - margin),
        max(0, int(rows[0]) - margin),
        min(width, int(cols[-1]) + 1 + margin),
        min(height, int(rows[-1]) + 1 + margin),
    )


def alpha_of(picture: Image.Image) -> Image.Image:
    return picture if picture.mode == "L" else picture.getchannel("A")


def place_on_canvas(
    picture: Image.Image,
    box: tuple[int, int, int, int] | None,
    canvas: tuple[int, int],
    fill: float,
) -> Image.Image:
    """``picture``'s ``box`` scaled to fill ``fill`` of ``canvas`` (limiting side), centred
    on a transparent canvas (black for a mask)."""
    width, height = canvas
    mode = "L" if picture.mode == "L" else "RGBA"
    out = Image.new(mode, canvas, 0)
    if box is None:
        return out
    region = picture.crop(box)
    box_w, box_h = region.size
    scale = min(fill * width / box_w, fill * height / box_h)
    size = (max(1, round(box_w * scale)), max(1, round(box_h * scale)))
    if size != region.size:
        # Pillow resizes RGBA with premultiplied alpha: no dark fringes
        region = region.resize(size, Image.Resampling.LANCZOS)
    out.paste(region, ((width - size[0]) // 2, (height - size[1]) // 2))
    return out


def apply_background(picture: Image.Image, color: tuple[int, int, int, int]) -> Image.Image:
    """``picture`` (RGBA) alpha-composited onto a solid ``color``; RGBA."""
    background = Image.new("RGBA", picture.size, tuple(color))
    return Image.alpha_composite(background, picture.convert("RGBA"))
