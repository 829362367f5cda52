"""decode_image: every input kind we accept, and one stable error code per failure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shared.errors import CutoutError, ImageTooLarge, InvalidImage, UnsupportedFormat
from tests.unit.engine_helpers import encode, png_header_only, scene
from worker.engine import decode_image
from worker.engine.imageio import sniff_format


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {"quality": 95}),
        ("PNG", {}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("TIFF", {}),
        ("GIF", {}),
    ],
)
def test_each_format_decodes_to_the_same_picture(fmt: str, params: dict) -> None:
    source = scene()
    image = decode_image(encode(source, fmt, **params))
    assert image.size == source.size
    rgb = np.asarray(image.convert("RGB"), dtype=int)
    # lossy formats (JPEG, GIF's palette) within a few levels of the source colours
    assert np.abs(rgb[24, 32] - (220, 30, 30)).max() <= 8
    assert np.abs(rgb[2, 2] - (20, 40, 200)).max() <= 8


def test_sniffing_uses_bytes_not_names() -> None:
    assert sniff_format(encode(scene(), "PNG")) == "PNG"
    assert sniff_format(encode(scene(), "WEBP")) == "WEBP"
    assert sniff_format(b"II*\x00rest") == "TIFF"
    assert sniff_format(b"MM\x00*rest") == "TIFF"
    assert sniff_format(b"hello") is None


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    image = decode_image(data)
    assert image.convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in ((0, 255, 0), (255, 0, 0))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    image = decode_image(data)
    assert image.convert("RGB").getpixel((5, 5)) == (0, 255, 0)


def test_exif_orientation_is_applied() -> None:
    source = Image.new("RGB", (40, 20), (0, 0, 0))
    source.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image = decode_image(encode(source, "JPEG", exif=exif, quality=95))
    assert image.size == (20, 40)
    # the left stripe ends up on top
    assert np.asarray(image.convert("L"))[2, 10] > 200
    assert np.asarray(image.convert("L"))[38, 10] < 50


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P"])
def test_modes_rembg_handles_are_kept(mode: str) -> None:
    source = scene().convert(mode)
    image = decode_image(encode(source, "PNG"))
    assert image.mode == mode


def test_palette_with_transparency_keeps_its_alpha() -> None:
    source = Image.new("P", (8, 8), 0)
    source.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    source.paste(1, (0, 0, 4, 8))
    image = decode_image(encode(source, "PNG", transparency=1))
    rgba = image.convert("RGBA")
    assert rgba.getpixel((1, 1))[3] == 0
    assert rgba.getpixel((6, 1)) == (255, 0, 0, 255)


def test_cmyk_jpeg() -> None:
    image = decode_image(encode(scene().convert("CMYK"), "JPEG", quality=95))
    assert image.mode == "CMYK"
    assert np.abs(np.asarray(image.convert("RGB"), int)[24, 32] - (220, 30, 30)).max() <= 12


def test_16_bit_greyscale_keeps_its_range() -> None:
    pixels = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    source = Image.fromarray(pixels)
    assert source.mode.startswith("I;16")
    image = decode_image(encode(source, "PNG"))
    # Pillow's own conversion would clip 256.. to 255 (white); we scale instead
    assert image.mode == "L"
    assert np.asarray(image).tolist() == [[0, 1, 128, 255]]


def test_zero_bytes_is_invalid_image() -> None:
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"")


def test_text_is_unsupported_format() -> None:
    with pytest.raises(UnsupportedFormat, match="text"):
        decode_image(b"name,price\nmug,12\n")


def test_truncated_jpeg_is_invalid_image() -> None:
    data = encode(scene(256, 256), "JPEG", quality=95)
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2])


def test_corrupt_png_is_invalid_image() -> None:
    data = bytearray(encode(scene(), "PNG"))
    data[60:80] = b"\x00" * 20  # inside IDAT: the CRC no longer matches
    with pytest.raises(InvalidImage):
        decode_image(bytes(data))


def test_magic_without_an_image_is_invalid_image() -> None:
    with pytest.raises(InvalidImage):
        decode_image(b"GIF89a" + b"\x00" * 4)


def test_header_beyond_the_pillow_bomb_limit_is_too_large_without_decoding() -> None:
    # 10^10 pixels claimed; Pillow's bomb guard fires on the header, nothing is allocated
    with pytest.raises(ImageTooLarge):
        decode_image(png_header_only(100_000, 100_000), max_pixels=10**12, max_side=10**6)


def test_header_beyond_our_pixel_limit_is_too_large() -> None:
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(png_header_only(3000, 3000), max_pixels=1_000_000)


def test_header_beyond_our_side_limit_is_too_large() -> None:
    with pytest.raises(ImageTooLarge, match="side"):
        decode_image(png_header_only(30_000, 10), max_side=20_000)


def test_default_limits_refuse_100000_square() -> None:
    with pytest.raises(ImageTooLarge):
        decode_image(png_header_only(100_000, 100_000))


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff" + b"\x00" * 50,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20,
        b"BM" + b"\xff" * 60,
        b"II*\x00" + b"\xff" * 60,
    ],
)
def test_garbage_after_magic_is_a_cutout_error(data: bytes) -> None:
    with pytest.raises(CutoutError) as info:
        decode_image(data)
    assert info.value.code in ("invalid_image", "image_too_large")
