"""Small generated images and masks for the engine's unit tests (no model weights)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def scene(width: int = 64, height: int = 48) -> Image.Image:
    """A red rectangle (x 16..47, y 12..35) on blue, RGB."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:] = (20, 40, 200)
    pixels[12:36, 16:48] = (220, 30, 30)
    return Image.fromarray(pixels)


def box_mask(
    size: tuple[int, int], box: tuple[int, int, int, int], value: int = 255
) -> Image.Image:
    """Mode L, ``value`` inside ``box`` (left, top, right, bottom), 0 elsewhere."""
    width, height = size
    pixels = np.zeros((height, width), np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = value
    return Image.fromarray(pixels)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose valid IHDR claims ``width``×``height``, with an empty IDAT: no pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"")


def alpha_bbox(image: Image.Image) -> tuple[int, int, int, int] | None:
    band = image if image.mode == "L" else image.getchannel("A")
    return band.getbbox()
