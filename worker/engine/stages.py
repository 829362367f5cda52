"""The steps every render shares, around whatever makes the mask: decoding the input
under the limits (:func:`decode_input`), and the background, the catalogue's picture and
the encoding (:func:`output`). :meth:`Engine.process` makes its mask with a model between
them; :meth:`Engine.rerender` takes a corrected one (worker/engine/rerender.py).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from PIL import Image

from shared.contract.limits import Limits, check_input
from shared.contract.options import Options
from worker.engine import quality, render
from worker.engine.imageio import decode_image


@dataclasses.dataclass
class Result:
    """Encoded output and what it took (seconds per stage: decode, preprocess, inference,
    postprocess, encode)."""

    data: bytes
    content_type: str
    width: int
    height: int
    timings: dict[str, float]
    #: ``result.subject`` and ``result.foreground`` (worker/engine/render.py)
    subject: dict[str, Any] | None = None
    foreground: dict[str, int] | None = None
    #: how likely the cutout is to be wrong (worker/engine/quality.py, the ``score`` option)
    quality: quality.Quality | None = None
    #: the input's size as decoded (before ``max_megapixels``): what a corrected mask fits
    input_size: tuple[int, int] | None = None


@dataclasses.dataclass
class Masked:
    """What makes the picture besides the image: the mask (mode L, the image's size),
    ``refine``'s colours (RGBA, changed in place by the render), the quality of the map
    the mask came from, and seconds per stage (preprocess, inference, score)."""

    mask: Image.Image
    colours: Image.Image | None
    quality: quality.Quality | None
    timings: dict[str, float]


def decode_input(
    data: bytes, options: Options, limits: Limits
) -> tuple[Image.Image, tuple[int, int]]:
    """The input decoded under the limits and fitted to ``max_megapixels``, and its size
    as decoded. Raises InvalidImage, UnsupportedFormat, ImageTooLarge."""
    image = decode_image(data, max_pixels=limits.max_pixels, max_side=limits.max_side)
    original_size = image.size
    # the downscaled copy replaces the original (one full-size image in memory)
    image = render.fit_megapixels(image, options.max_megapixels)
    # matting runs on what is left after max_megapixels
    check_input(options, image.size, limits)
    return image, original_size


def output(
    image: Image.Image,
    original_size: tuple[int, int],
    mask: Image.Image,
    options: Options,
    limits: Limits,
    *,
    background: bytes | None,
    colours: Image.Image | None,
    timings: dict[str, float],
    assessed: quality.Quality | None = None,
) -> Result:
    """The encoded picture of ``image`` cut out by ``mask`` (the catalogue's whole path,
    worker/engine/render.py), over ``background`` (the background image's bytes,
    decoded here under the input's limits) when the options name one. ``timings`` gains
    ``postprocess`` and ``encode``."""
    clock = time.perf_counter
    start = clock()
    backdrop = None
    if background is not None:
        # decoded only now, under the input's limits: never two full decodes at once
        # with the model's buffers
        backdrop = render.decode_background(background, limits.max_pixels, limits.max_side)
        check_input(options, original_size, limits, backdrop.size)
    rendered = render.render(image, mask, options, backdrop, colours)
    picture = rendered.picture
    rendered_at = clock()
    encoded = render.encode_output(picture, options.format)
    return Result(
        quality=assessed,
        data=encoded,
        content_type=options.content_type,
        width=picture.width,
        height=picture.height,
        subject=render.subject_fields(rendered.subject, image.size, original_size),
        foreground=render.box_fields(rendered.foreground),
        timings={**timings, "postprocess": rendered_at - start, "encode": clock() - rendered_at},
        input_size=original_size,
    )
