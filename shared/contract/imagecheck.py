"""What an image's bytes are, and whether they are within the limits, before any pixel
is decoded: one module for the API's intake (api/intake.py) and the engine
(worker/engine/imageio.py), so both refuse the same input with the same code and words.

The checks, in order:

1. not empty (``invalid_image``);
2. the format by its magic numbers only: JPEG, PNG, WebP, GIF, BMP, TIFF, anything else
   is ``unsupported_format`` (a file's name or declared type is never trusted);
3. the width and height in the header against ``CUTOUT_MAX_SIDE`` and then
   ``CUTOUT_MAX_PIXELS`` (``image_too_large``), or ``invalid_image`` for an empty one.

The header is read by Pillow, which opens lazily (no decode), with its
decompression-bomb guard on: a header past it is ``image_too_large`` too.
"""

from __future__ import annotations

import io
import struct
import warnings

from PIL import Image, UnidentifiedImageError

from shared.errors import ImageTooLarge, InvalidImage, UnsupportedFormat

# (our name, Pillow's format name, content type)
FORMATS: tuple[tuple[str, str, str], ...] = (
    ("jpeg", "JPEG", "image/jpeg"),
    ("png", "PNG", "image/png"),
    ("webp", "WEBP", "image/webp"),
    ("gif", "GIF", "image/gif"),
    ("bmp", "BMP", "image/bmp"),
    ("tiff", "TIFF", "image/tiff"),
)
CONTENT_TYPES = {name: ctype for name, _, ctype in FORMATS}
PILLOW_FORMATS = {name: pil for name, pil, _ in FORMATS}
BMP_HEADER = 26  # bytes up to and with the width and height of the smallest BMP header


def sniff(data: bytes) -> str | None:
    """The format named by the magic numbers at the start of ``data`` (``jpeg``,
    ``png``, ``webp``, ``gif``, ``bmp``, ``tiff``), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    # "BM" alone starts plenty of text; a bitmap has at least a header's bytes
    if data.startswith(b"BM") and len(data) >= BMP_HEADER:
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def check_format(data: bytes) -> str:
    """The format of ``data`` (see :func:`sniff`).

    Raises InvalidImage when it is empty, UnsupportedFormat when it is no format we read.
    """
    if not data:
        raise InvalidImage("the input is empty (0 bytes)")
    fmt = sniff(data)
    if fmt is None:
        raise UnsupportedFormat(
            "the input is not a JPEG, PNG, WebP, GIF, BMP or TIFF image (judged by its content"
            + (", which looks like text)" if _looks_like_text(data) else ")")
        )
    return fmt


def check_dimensions(width: int, height: int, *, max_pixels: int, max_side: int) -> None:
    """Raises InvalidImage for an image without pixels, ImageTooLarge for one with a side
    over ``max_side`` or more than ``max_pixels`` pixels (checked in that order)."""
    if width <= 0 or height <= 0:
        raise InvalidImage(f"the image has no pixels ({width}x{height})")
    if width > max_side or height > max_side:
        raise ImageTooLarge(
            f"the image is {width}x{height}; the largest side allowed is {max_side} pixels",
            width=width,
            height=height,
        )
    if width * height > max_pixels:
        raise ImageTooLarge(
            # plain digits: clients search the detail for the count (tests/integration/test_api.py)
            f"the image is {width}x{height} ({width * height} pixels); "
            f"the limit is {max_pixels} pixels",
            width=width,
            height=height,
        )


def open_header(data: bytes, fmt: str) -> Image.Image:
    """``data`` opened by Pillow as ``fmt`` (our name), header read, no pixel decoded.

    Raises ImageTooLarge when Pillow's decompression-bomb guard trips, InvalidImage when
    the header cannot be read.
    """
    try:
        with warnings.catch_warnings():
            # between 1x and 2x Image.MAX_IMAGE_PIXELS Pillow only warns; our own limits
            # decide, and pytest's warnings-as-errors must not
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[fmt]])
    except Image.DecompressionBombError:
        raise ImageTooLarge("the image declares more pixels than this server accepts") from None
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        TypeError,
        KeyError,
        struct.error,
    ):
        raise InvalidImage(f"the {fmt.upper()} header cannot be read") from None


def header_size(data: bytes, fmt: str) -> tuple[int, int]:
    """Width and height from the image header only (see :func:`open_header`)."""
    with open_header(data, fmt) as image:
        width, height = image.size
    return width, height


def check_image(data: bytes, *, max_pixels: int, max_side: int) -> tuple[str, tuple[int, int]]:
    """All the checks of this module: (format, (width, height)), or the error."""
    fmt = check_format(data)
    width, height = header_size(data, fmt)
    check_dimensions(width, height, max_pixels=max_pixels, max_side=max_side)
    return fmt, (width, height)


def _looks_like_text(data: bytes) -> bool:
    try:
        data[:512].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
