"""What one job may cost, checked before the work: the output's pixels, alpha matting's
input pixels, and the whole job's memory (docs/security.md, "Memory per job").

The API checks at submit (the canvas from the option alone; the matting bound once the
input's header is read, for uploads sent with the request), and the worker checks again
before decoding and before matting, so a job that reached the queue another way (a URL,
a direct upload, a job queued before a limit was lowered) fails with the same code
instead of growing its process.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

from shared.contract.options import Options
from shared.contract.settings import Settings
from shared.errors import ImageTooLarge, InvalidOption


class Limits(Protocol):
    """What one job may cost: ``CUTOUT_MAX_PIXELS``, ``CUTOUT_MAX_SIDE``,
    ``CUTOUT_MAX_MATTING_PIXELS`` and ``CUTOUT_MAX_JOB_MEMORY``. The settings are one:
    the API, the worker and ``cutout remove`` hand theirs, whole, to these checks and to
    the engine; :class:`JobLimits` is one made of values."""

    # read-only members: the settings and JobLimits are frozen dataclasses
    @property
    def max_pixels(self) -> int: ...
    @property
    def max_side(self) -> int: ...
    @property
    def max_matting_pixels(self) -> int: ...
    @property
    def max_job_bytes(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class JobLimits:
    """:class:`Limits` given as values (tests, benchmarks); each defaults to its
    setting's default."""

    max_pixels: int = Settings.max_pixels
    max_matting_pixels: int = Settings.max_matting_pixels
    max_job_bytes: int = Settings.max_job_bytes
    max_side: int = Settings.max_side


#: the settings' defaults: the engine's limits when its caller gives none
DEFAULT_LIMITS = JobLimits()


# What a job adds to a warmed worker child, per pixel of what it holds at once (measured
# by tests/integration/test_option_memory.py; docs/security.md has the table).
JOB_BASE_BYTES = 64_000_000
INPUT_BYTES_PER_PIXEL = 32  # decode, 320 map upsampled, mask, cutout, encoder buffers
DECODED_BYTES_PER_PIXEL = 8  # a full-size decode that max_megapixels shrinks at once
REFINE_BYTES = 80_000_000  # refine's coarse grid and one strip (its RGBA replaces the cutout's)
REFINE_BYTES_PER_SIDE = 7_680  # its row-narrowed copy: 640 float32 RGB per row of the short side
CANVAS_BYTES_PER_PIXEL = 24  # the canvas, its composite and the encoder's copy
BACKGROUND_BYTES_PER_PIXEL = 8  # a background image, decoded, before it is fitted
# alpha matting solves the trimap's band a box at a time, each within this many bytes
# (worker/engine/matting.py; a smaller picture costs at most 3.7 kB per pixel), and holds
# a few bytes per pixel besides: the trimap, a coarse alpha and its RGBA result
MATTING_BOX_BYTES = 600_000_000
MATTING_BOX_BYTES_PER_PIXEL = 3_700
MATTING_BYTES_PER_PIXEL = 16


def job_bytes(
    options: Options, size: tuple[int, int], background: tuple[int, int] | None = None
) -> int:
    """The most memory one job of ``options`` on an input of ``size`` (and a background
    image of ``background``, when known) adds to a worker child, in bytes."""
    pixels = size[0] * size[1]
    worked = pixels
    if options.max_megapixels:
        worked = min(pixels, int(options.max_megapixels * 1_000_000))
    total = JOB_BASE_BYTES + INPUT_BYTES_PER_PIXEL * worked
    if worked < pixels:
        # max_megapixels: the full-size decode and its resampling, then only the copy
        total += DECODED_BYTES_PER_PIXEL * pixels
    if options.refine:
        # the shorter side is at most the square root of the pixels
        total += REFINE_BYTES + REFINE_BYTES_PER_SIDE * math.isqrt(worked)
    if options.alpha_matting and not options.mask_only:
        total += matting_bytes(worked)
    if options.canvas is not None:
        total += CANVAS_BYTES_PER_PIXEL * options.canvas[0] * options.canvas[1]
    if background is not None:
        total += BACKGROUND_BYTES_PER_PIXEL * background[0] * background[1]
    return total


def matting_bytes(pixels: int) -> int:
    """What alpha matting adds on an input of ``pixels`` (after ``max_megapixels``): one
    box's solve at most, and its per-pixel arrays."""
    box = min(MATTING_BOX_BYTES, MATTING_BOX_BYTES_PER_PIXEL * pixels)
    return box + MATTING_BYTES_PER_PIXEL * pixels


def check_options(options: Options, limits: Limits) -> None:
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


def check_input(
    options: Options,
    size: tuple[int, int],
    limits: Limits,
    background: tuple[int, int] | None = None,
) -> None:
    """An input of ``size`` may be processed with ``options``: alpha matting's input
    (after ``max_megapixels``) is bounded by ``CUTOUT_MAX_MATTING_PIXELS`` (its time grows
    with the band it solves); the whole job (input, ``refine``, ``alpha_matting``,
    ``canvas``, a background image of ``background``) by ``CUTOUT_MAX_JOB_MEMORY``. Raises
    ImageTooLarge."""
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
    need = job_bytes(options, size, background)
    if need > limits.max_job_bytes:
        parts = [f"the image is {width}x{height}"]
        if options.canvas is not None:
            parts.append(f"canvas {options.canvas[0]}x{options.canvas[1]}")
        if background is not None:
            parts.append(f"background {background[0]}x{background[1]}")
        if options.refine:
            parts.append("refine")
        if matting:
            parts.append("alpha_matting")
        raise ImageTooLarge(
            f"this job would need about {need / 1e9:.1f} GB ({', '.join(parts)}), over "
            f"the {limits.max_job_bytes / 1e9:.1f} GB one job may use "
            "(CUTOUT_MAX_JOB_MEMORY): send a smaller image, a smaller canvas or "
            "max_megapixels",
            width=width,
            height=height,
        )
