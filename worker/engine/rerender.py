"""A job's result again, from a corrected mask instead of the model's (PUT
/v1/jobs/{id}/mask, docs/api.md "Corrected masks"): :func:`rerender`.

No model runs. The input is decoded and fitted exactly as :meth:`Engine.process` does
(worker/engine/stages.py), the mask is checked (shared/contract/maskcheck.py), decoded to grey and
scaled with LANCZOS to the processed image, as the engine scales the model's 320x320 mask
(worker/engine/families.py), and it takes the model's mask's place in the catalogue's
whole path: ``post_process``, ``roi``, ``alpha_matting``, ``crop``/``margin``/
``crop_margin``, ``canvas``/``fill``, ``scale``/``position``, ``shadow``, the background
colour or image, ``mask_only`` and the format (zip included) all apply as they did.

``refine`` made its alpha from the model's map; here the alpha is the corrected mask as
it is, and only refine's colour decontamination is done again, at the mask's new edge
(:func:`decontaminated`): where the mask is between 0 and 255 the colour is solved from
``I = αF + (1 − α)B`` with ``B`` the nearby background colour and blended towards the
nearby foreground colour where α is small, exactly as worker/engine/refine.py does in
its band. A hard-edged mask (only 0 and 255) keeps the photo's colours.

Memory: the job's own (shared/contract/limits.py), plus the mask's decode (at most RGBA at its
own size), its grey channel at the processed size and at the input's (the copy that is
stored): shared/contract/maskcheck.py counts them before anything is decoded.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from shared.contract import maskcheck
from shared.contract.limits import Limits, check_options
from shared.contract.options import Options
from shared.errors import CutoutError
from worker.engine import stages
from worker.engine.imageio import decode_image, row_strips
from worker.engine.refine import (
    DEFAULT_PARAMS,
    STRIP_PIXELS,
    RefineParams,
    _coarse_guide,
    _remap,
    _rows,
    pull_push,
)


def grey_of(image: Image.Image) -> Image.Image:
    """The mask a decoded PNG stands for: its alpha when it has one (RGBA, LA, a palette
    with transparency), else its grey (mode L)."""
    if image.mode in ("RGBA", "LA", "PA"):
        return image.getchannel("A")
    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").getchannel("A")
    return image if image.mode == "L" else image.convert("L")


def decode_mask(
    data: bytes, input_size: tuple[int, int], options: Options, limits: Limits
) -> Image.Image:
    """The corrected mask's bytes, checked (shared/contract/maskcheck.py) against an input of
    ``input_size``, decoded to grey at its own size. Raises InvalidImage,
    UnsupportedFormat, ImageTooLarge, MaskSizeMismatch (each naming the mask)."""
    maskcheck.check_mask(data, input_size, options, limits)
    try:
        decoded = decode_image(data, max_pixels=limits.max_pixels, max_side=limits.max_side)
    except CutoutError as exc:
        raise maskcheck.as_mask_error(exc) from None
    return grey_of(decoded)


def fitted(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``mask`` at ``size``: itself, or scaled with LANCZOS (the model mask's rule)."""
    return mask if mask.size == size else mask.resize(size, Image.Resampling.LANCZOS)


def decontaminated(
    image: Image.Image, mask: Image.Image, params: RefineParams = DEFAULT_PARAMS
) -> Image.Image:
    """``image`` as an RGBA cutout with ``mask`` (mode L, its size) as the alpha and
    refine's decontaminated colours where the mask is neither 0 nor 255 (the module
    doc); fully transparent pixels carry no colour. A strip at a time, as refine."""
    width, height = image.size
    scale = min(1.0, params.coarse_side / max(width, height))
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    guide = _coarse_guide(image, cw, ch)
    coarse = np.asarray(mask.resize((cw, ch), Image.Resampling.BOX), dtype=np.float32) / 255.0
    fg_fill = pull_push(guide, (coarse > 0.97).astype(np.float32))
    bg_fill = pull_push(guide, (coarse < 0.03).astype(np.float32))
    fills = np.concatenate([fg_fill, bg_fill], axis=-1)
    picture = Image.new("RGBA", (width, height))
    xs = np.arange(width, dtype=np.float64)
    for y0, y1 in row_strips(width, height, STRIP_PIXELS):
        photo = _rows(image, y0, y1).astype(np.float32) / 255.0
        alpha8 = np.asarray(mask.crop((0, y0, width, y1)))
        edge = (alpha8 > 0) & (alpha8 < 255)
        rgb = photo
        if edge.any():
            f = _remap(fills, cw / width, ch / height, xs, np.arange(y0, y1, dtype=np.float64))
            fg, bg = f[..., :3], f[..., 3:]
            a = (alpha8.astype(np.float32) / 255.0)[..., None]
            solved = np.clip((photo - (1.0 - a) * bg) / np.maximum(a, 1e-3), 0.0, 1.0)
            rgb = np.where(edge[..., None], a * solved + (1.0 - a) * fg, photo)
        out = np.empty((y1 - y0, width, 4), dtype=np.uint8)
        out[..., 3] = alpha8
        out[..., :3] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out[..., :3] *= (alpha8 > 0)[..., None]
        picture.paste(Image.fromarray(out), (0, y0))
    return picture


def rerender(
    data: bytes,
    mask: bytes,
    options: Options,
    limits: Limits,
    *,
    background: bytes | None = None,
) -> tuple[stages.Result, Image.Image]:
    """The job's result from the input's bytes ``data`` and the corrected ``mask`` (a
    PNG's bytes), and the mask as stored: grey, the input's size (as decoded: upright).
    Raises what :meth:`Engine.process` raises for the input, the options and the
    background, and :func:`decode_mask`'s errors."""
    clock = time.perf_counter
    t0 = clock()
    check_options(options, limits)
    image, original_size = stages.decode_input(data, options, limits)
    grey = decode_mask(mask, original_size, options, limits)
    t1 = clock()
    corrected = fitted(grey, image.size)
    stored = fitted(grey, original_size)
    del grey
    colours = decontaminated(image, corrected) if options.refine else None
    t2 = clock()
    result = stages.output(
        image,
        original_size,
        corrected,
        options,
        limits,
        background=background,
        colours=colours,
        timings={"decode": t1 - t0, "decontaminate": t2 - t1},
    )
    return result, stored
