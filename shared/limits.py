"""What one job may cost, checked before the work: the output's pixels and alpha
matting's input pixels (docs/security.md, "Memory per job").

The API checks at submit (the canvas from the option alone; the matting bound once the
input's header is read, for uploads sent with the request), and the worker checks again
before decoding and before matting, so a job that reached the queue another way (a URL,
a direct upload, a job queued before a limit was lowered) fails with the same code
instead of growing its process.
"""

from __future__ import annotations

from typing import Protocol

from shared.errors import ImageTooLarge, InvalidOption
from shared.options import Options


class _Limits(Protocol):
    max_pixels: int
    max_matting_pixels: int


def check_options(options: Options, limits: _Limits) -> None:
    """The output size that ``options`` fix by themselves (``canvas``) is within
    ``CUTOUT_MAX_PIXELS``. Raises InvalidOption naming ``canvas``.

    Other outputs are never larger than the input (``crop`` and ``margin`` clamp to it),
    which the input limits bound already.
    """
    if options.canvas is None:
        return
    width, height = options.canvas
    if width * height > limits.max_pixels:
        raise InvalidOption(
            f"canvas {width}x{height} is {width * height:,} pixels, over the limit of "
            f"{limits.max_pixels:,} output pixels (CUTOUT_MAX_PIXELS)",
            option="canvas",
        )


def check_input(options: Options, size: tuple[int, int], limits: _Limits) -> None:
    """An input of ``size`` may be processed with ``options``: alpha matting needs about
    2.5 kB per pixel, so its input (after ``max_megapixels``) is bounded by
    ``CUTOUT_MAX_MATTING_PIXELS``. Raises ImageTooLarge."""
    width, height = size
    pixels = width * height
    if options.max_megapixels:
        # the worker mats the input after max_megapixels has downscaled it
        pixels = min(pixels, int(options.max_megapixels * 1_000_000))
    matting = options.alpha_matting and not options.mask_only
    if matting and pixels > limits.max_matting_pixels:
        raise ImageTooLarge(
            f"alpha matting is limited to {limits.max_matting_pixels:,} pixels "
            f"(CUTOUT_MAX_MATTING_PIXELS); the image is {width}x{height} = "
            f"{width * height:,} pixels: send a smaller image or leave alpha_matting off",
            width=width,
            height=height,
        )
