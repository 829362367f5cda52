"""A corrected mask's checks (PUT /v1/jobs/{id}/mask), before any pixel is decoded: one
module for the API (which refuses a bad mask at once) and the worker (which decodes it).

A mask is a PNG: grey (``L``, 1-bit, 16-bit: scaled to 8 bits), or any PNG with an alpha
channel (``RGBA``, ``LA``, a palette with transparency), whose alpha is the mask; an RGB
PNG without alpha is read as grey. Its size is the input's, or the input's shape at
another scale (each side within a pixel's rounding of one scale factor), or the model's
own 320x320 for any input; it is scaled to the image the job processed (the input, or
its ``max_megapixels`` copy) with LANCZOS, as the engine scales the model's 320x320 mask
(worker/engine/families.py). The same limits as an upload hold: the request's bytes
(``CUTOUT_MAX_UPLOAD_BYTES``), the pixels and sides (``CUTOUT_MAX_PIXELS``,
``CUTOUT_MAX_SIDE``, Pillow's decompression-bomb guard) and the job's memory
(``CUTOUT_MAX_JOB_MEMORY``, counting the mask's decode). Every error names
``field: "mask"`` and says that it is the mask.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from shared.contract import imagecheck
from shared.contract.limits import Limits, job_bytes
from shared.contract.options import Options
from shared.errors import (
    CutoutError,
    ImageTooLarge,
    InvalidImage,
    MaskSizeMismatch,
    UnsupportedFormat,
)

#: the model's own mask size (worker/engine/families.py U2NetFamily.input_size)
MODEL_SIZE = (320, 320)
#: a mask's decode (at most RGBA) and its grey channel, per pixel of the mask, plus the
#: grey mask scaled to the input (one byte per input pixel)
MASK_BYTES_PER_PIXEL = 5
INPUT_MASK_BYTES_PER_PIXEL = 2


def as_mask_error(exc: CutoutError) -> CutoutError:
    """``exc`` said of the mask (its message prefixed, ``field: "mask"``)."""
    return type(exc)(f"the mask: {exc.message}", **{**exc.extra, "field": "mask"})


def fits(mask: tuple[int, int], image: tuple[int, int]) -> bool:
    """Whether a mask of size ``mask`` may stand for an input of size ``image``."""
    if mask in (image, MODEL_SIZE):
        return True
    (mw, mh), (w, h) = mask, image
    # one scale factor for both sides, to within a pixel's rounding of the longer one
    return abs(mw * h - mh * w) < max(w, h)


def mask_header(data: bytes, *, max_pixels: int, max_side: int) -> tuple[int, int]:
    """The mask's size from its PNG header, within the input limits. Raises InvalidImage
    (empty, unreadable), UnsupportedFormat (not a PNG), ImageTooLarge."""
    fmt = imagecheck.sniff(data)
    if fmt != "png":
        what = f"a {fmt.upper()} image" if fmt else "no image (judged by its content)"
        raise UnsupportedFormat(
            f"the mask must be a PNG (grey, or with an alpha channel); this is {what}",
            field="mask",
        )
    try:
        size = imagecheck.header_size(data, fmt)
        imagecheck.check_dimensions(*size, max_pixels=max_pixels, max_side=max_side)
    except CutoutError as exc:
        raise as_mask_error(exc) from None
    return size


def verify_png(data: bytes) -> None:
    """Every chunk of the PNG is whole and its checksum right, through ``IEND``, without
    decoding a pixel (a truncated or damaged upload). Raises InvalidImage."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                image.verify()
    except Exception:  # noqa: BLE001 - Pillow raises many kinds; all mean "damaged"
        raise InvalidImage(
            "the mask: the PNG is truncated or damaged (a chunk or its checksum is wrong)",
            field="mask",
        ) from None


def check_fits(mask: tuple[int, int], image: tuple[int, int]) -> None:
    """Raises MaskSizeMismatch unless :func:`fits`."""
    if not fits(mask, image):
        raise MaskSizeMismatch(
            f"the mask is {mask[0]}x{mask[1]}; the job's input is {image[0]}x{image[1]}: "
            "send it at that size, at another size of the same shape, or at 320x320",
            field="mask",
            width=mask[0],
            height=mask[1],
            input_width=image[0],
            input_height=image[1],
        )


def check_memory(
    options: Options, image: tuple[int, int], mask: tuple[int, int], limits: Limits
) -> None:
    """The re-render's memory (the job's own, plus the mask's decode) is within
    ``CUTOUT_MAX_JOB_MEMORY``. Raises ImageTooLarge."""
    need = (
        job_bytes(options, image)
        + MASK_BYTES_PER_PIXEL * mask[0] * mask[1]
        + INPUT_MASK_BYTES_PER_PIXEL * image[0] * image[1]
    )
    if need > limits.max_job_bytes:
        raise ImageTooLarge(
            f"the mask: rendering it would need about {need / 1e9:.1f} GB (mask "
            f"{mask[0]}x{mask[1]}, input {image[0]}x{image[1]}), over the "
            f"{limits.max_job_bytes / 1e9:.1f} GB one job may use (CUTOUT_MAX_JOB_MEMORY): "
            "send the mask at the input's size or smaller",
            field="mask",
        )


def check_mask(
    data: bytes, image: tuple[int, int], options: Options, limits: Limits
) -> tuple[int, int]:
    """Every check above, for a mask of a job whose input is ``image`` pixels: the mask's
    size. Raises InvalidImage, UnsupportedFormat, ImageTooLarge, MaskSizeMismatch."""
    if not data:
        raise InvalidImage("the mask is empty (0 bytes)", field="mask")
    size = mask_header(data, max_pixels=limits.max_pixels, max_side=limits.max_side)
    check_fits(size, image)
    check_memory(options, image, size, limits)
    verify_png(data)
    return size
