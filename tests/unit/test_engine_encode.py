"""Encoders: our PNG writer is lossless for every mode; WebP and JPEG as documented."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.unit.engine_helpers import scene
from worker.engine.imageio import encode_image


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_png_round_trips_exactly(mode: str) -> None:
    rng = np.random.default_rng(3)
    source = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), "RGBA")
    source = source.convert(mode)
    out = decode(encode_image(source, "png"))
    assert out.format == "PNG"
    assert out.mode == mode
    assert out.size == source.size
    np.testing.assert_array_equal(np.asarray(out), np.asarray(source))


@pytest.mark.parametrize("mode", ["L", "RGBA"])
@pytest.mark.parametrize("strip_rows", [1, 5, 37])
def test_png_in_strips_is_the_same_file(
    monkeypatch: pytest.MonkeyPatch, mode: str, strip_rows: int
) -> None:
    """encode_png filters and compresses a strip at a time: the file is byte for byte the
    one-strip file, and decodes to the picture (rows across strip edges included)."""
    rng = np.random.default_rng(5)
    source = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), "RGBA")
    source = source.convert(mode)
    whole = encode_image(source, "png")
    monkeypatch.setattr("worker.engine.imageio.PNG_STRIP_PIXELS", 53 * strip_rows)
    striped = encode_image(source, "png")
    assert striped == whole
    np.testing.assert_array_equal(np.asarray(decode(striped)), np.asarray(source))


def test_png_of_a_one_pixel_image() -> None:
    source = Image.new("RGBA", (1, 1), (1, 2, 3, 4))
    assert decode(encode_image(source, "png")).getpixel((0, 0)) == (1, 2, 3, 4)


def test_webp_keeps_alpha() -> None:
    source = scene().convert("RGBA")
    source.putalpha(Image.new("L", source.size, 0).point(lambda _: 0))
    source.paste((220, 30, 30, 255), (16, 12, 48, 36))
    out = decode(encode_image(source, "webp"))
    assert out.format == "WEBP"
    assert out.mode == "RGBA"
    assert out.getpixel((30, 20))[3] == 255
    assert out.getpixel((2, 2))[3] == 0


def test_webp_mask_is_lossless() -> None:
    mask = Image.fromarray(np.random.default_rng(4).integers(0, 256, (20, 30), dtype=np.uint8))
    out = decode(encode_image(mask, "webp"))
    np.testing.assert_array_equal(np.asarray(out.convert("L")), np.asarray(mask))


def test_jpeg_is_rgb_or_greyscale() -> None:
    assert decode(encode_image(scene().convert("RGBA"), "jpeg")).mode == "RGB"
    assert decode(encode_image(scene().convert("L"), "jpeg")).mode == "L"
