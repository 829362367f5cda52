"""The bad-input corpus: hostile, broken and unusual files, generated at test time.

Nothing here is a committed binary: every case is built from a few lines of Pillow,
``struct`` and ``zlib``, so a reviewer can read exactly what each file is. Each
:class:`Case` states the outcome the service must give it:

- ``code=None``: accepted (202) and the job succeeds;
- ``code=X, stage="api"``: refused at intake with problem+json code ``X`` (before any
  job exists and before any pixel is decoded);
- ``code=X, stage="worker"``: accepted (the header is fine), and the job fails with
  ``error.code == X`` (the worker finds the damage when it decodes).

``cutout remove`` gives exit 0 for the first kind and exit 3 for the others.

``python -m tests.corpus.make DIR`` writes every case into DIR (for poking at by hand).
"""

from __future__ import annotations

import io
import json
import os
import random
import secrets
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from testkit.procs import multipart

# the limits the expectations assume (Settings' defaults)
MAX_SIDE = 20_000
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    content_type: str
    build: Callable[[], bytes]
    code: str | None = None  # None: the job succeeds
    stage: str = "api"  # where ``code`` is raised: "api" (intake) or "worker" (the job)
    note: str = ""

    @property
    def succeeds(self) -> bool:
        return self.code is None

    @property
    def http_status(self) -> int:
        """What POST /v1/jobs answers."""
        if self.code is None or self.stage == "worker":
            return 202
        return {
            "unsupported_format": 415,
            "payload_too_large": 413,
        }.get(self.code, 422)


# -- building blocks --------------------------------------------------------------------


def photo(size: tuple[int, int] = (96, 72), mode: str = "RGB") -> Image.Image:
    """A small scene: a red disc on a blue-green gradient (something to cut out)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 1] = (x * 200 // max(1, width - 1)).astype(np.uint8)
    pixels[..., 2] = 180
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2
    pixels[disc] = (220, 30, 30)
    image = Image.fromarray(pixels)
    return image if mode == "RGB" else image.convert(mode)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_raw(
    width: int,
    height: int,
    *,
    bit_depth: int = 8,
    color_type: int = 2,
    rows: bytes | None = None,
    extra_chunks: tuple[bytes, ...] = (),
) -> bytes:
    """A PNG written by hand: IHDR as declared, optional chunks, IDAT of ``rows``."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\x00" * 16, 9)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            png_chunk(b"IHDR", ihdr),
            *extra_chunks,
            png_chunk(b"IDAT", idat),
            png_chunk(b"IEND", b""),
        )
    )


def png_bomb(side: int) -> bytes:
    """A ``side``×``side`` 1-bit PNG of zeros: tiny compressed, huge decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    # stream the rows through zlib: the raw image (side²/8 bytes) never exists at once
    parts = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(compressor.compress(row * (side % 1000)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            png_chunk(b"IHDR", ihdr),
            png_chunk(b"IDAT", b"".join(parts)),
            png_chunk(b"IEND", b""),
        )
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 frame header is rewritten to ``width``×``height``."""
    data = bytearray(encode(photo((16, 16)), "JPEG", quality=80))
    at = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


def gif_animation(frames: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """An animated GIF with ``frames`` frames: one two-frame GIF from Pillow, its second
    frame's blocks (graphic control extension, image descriptor, LZW data) repeated."""
    first = photo(size).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    second = first.rotate(180)
    out = io.BytesIO()
    first.save(out, "GIF", save_all=True, append_images=[second], duration=20, loop=0)
    data = out.getvalue()
    assert data.endswith(b";")
    # the last graphic control extension starts the second frame's blocks
    start = data.rindex(b"\x21\xf9\x04")
    return data[:start] + data[start:-1] * (frames - 1) + b";"


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(photo((16, 16)).convert("P"), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)  # logical screen
    at = data.index(b"\x2c")  # the image descriptor
    struct.pack_into("<HH", data, at + 5, width, height)
    return bytes(data)


def bmp_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(photo((16, 16)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """A VP8X WebP whose canvas declares ``width``×``height`` (its frame is 16×16)."""
    inner = encode(photo((16, 16)), "WEBP", quality=80)
    assert inner[12:16] in (b"VP8 ", b"VP8L")
    canvas = struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + canvas
    body = b"WEBP" + vp8x + inner[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_pages(pages: int) -> bytes:
    images = [photo((16, 12)) for _ in range(pages)]
    return encode(images[0], "TIFF", save_all=True, append_images=images[1:])


def tiff_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(photo((16, 16)), "TIFF"))
    # rewrite tags 256 (ImageWidth) and 257 (ImageLength) in the first IFD
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        at = ifd + 2 + 12 * i
        (tag,) = struct.unpack_from("<H", data, at)
        if tag in (256, 257):
            # as a LONG (type 4, count 1) whatever type Pillow wrote
            struct.pack_into("<HHII", data, at, tag, 4, 1, width if tag == 256 else height)
    return bytes(data)


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return encode(photo((80, 48)), "JPEG", quality=85, exif=exif.tobytes())


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.png", encode(photo(), "PNG"))
    return out.getvalue()


def cut(data: bytes, share: float) -> bytes:
    return data[: int(len(data) * share)]


_SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<circle cx="32" cy="32" r="20" fill="red"/><script>alert(1)</script></svg>\n'
)
_HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>\n"
_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _heic() -> bytes:
    # an ISO-BMFF 'ftyp' box naming HEIC, then an empty 'meta' box: HEIC's first bytes
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return struct.pack(">I", 8 + len(ftyp)) + ftyp + struct.pack(">I", 8) + b"meta"


def _avif() -> bytes:
    try:
        return encode(photo((32, 32)), "AVIF")
    except (KeyError, OSError):  # Pillow without AVIF: the ftyp box is what we judge by
        ftyp = b"ftypavif" + b"\x00\x00\x00\x00" + b"mif1avif"
        return struct.pack(">I", 8 + len(ftyp)) + ftyp


def _animated_webp() -> bytes:
    frames = [photo((48, 32)).rotate(i * 12) for i in range(30)]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=30)


def _palette_transparency() -> bytes:
    image = photo((64, 48)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def _png16_rgb() -> bytes:
    # 16 bits per channel RGB (Pillow cannot write it; PNG allows it)
    width, height = 40, 30
    pixels = np.zeros((height, width, 3), ">u2")
    pixels[..., 0] = np.linspace(0, 65535, width, dtype=np.uint16)
    pixels[10:20, 10:30] = (60000, 1000, 1000)
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    return png_raw(width, height, bit_depth=16, color_type=2, rows=rows)


def _png_huge_text() -> bytes:
    # 8 MB of tEXt before the pixels: over Pillow's MAX_TEXT_CHUNK (1 MB)
    text = png_chunk(b"tEXt", b"Comment\x00" + b"A" * 8_000_000)
    base = encode(photo((32, 24)), "PNG")
    return base[:33] + text + base[33:]


def _png_ztxt_bomb() -> bytes:
    # a zTXt chunk of 200 MB of zeros compressed to ~200 KB
    compressor = zlib.compressobj(9)
    block = b"\x00" * 1_000_000
    packed = b"".join(compressor.compress(block) for _ in range(200)) + compressor.flush()
    chunk = png_chunk(b"zTXt", b"Comment\x00\x00" + packed)
    base = encode(photo((32, 24)), "PNG")
    return base[:33] + chunk + base[33:]


def _png_bad_crc() -> bytes:
    data = bytearray(encode(photo((32, 24)), "PNG"))
    at = data.index(b"IDAT")
    (length,) = struct.unpack_from(">I", data, at - 4)
    data[at + 4 + length] ^= 0xFF  # first byte of the IDAT's CRC
    return bytes(data)


def _png_garbage_idat() -> bytes:
    data = encode(photo((32, 24)), "PNG")
    head = data[:33]  # signature and IHDR, intact
    return head + png_chunk(b"IDAT", random_bytes(600, 7)) + png_chunk(b"IEND", b"")


def _jpeg_big_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription filling most of APP1's 64 KB
    return encode(photo(), "JPEG", exif=exif.tobytes())


def _tiff_float() -> bytes:
    pixels = np.linspace(0.0, 1.0, 48 * 32, dtype=np.float32).reshape(32, 48)
    return encode(Image.fromarray(pixels, "F"), "TIFF")


def _gzip_png() -> bytes:
    import gzip

    return gzip.compress(encode(photo(), "PNG"))


# -- the cases --------------------------------------------------------------------------

CASES: tuple[Case, ...] = (
    # not an image at all
    Case("empty", "empty.png", "image/png", lambda: b"", "invalid_image"),
    Case("one_byte", "one.jpg", "image/jpeg", lambda: b"\xff", "unsupported_format"),
    Case(
        "random_4k", "noise.png", "image/png", lambda: random_bytes(4096, 1), "unsupported_format"
    ),
    Case(
        "random_1m",
        "noise.jpg",
        "application/octet-stream",
        lambda: random_bytes(1_000_000, 2),
        "unsupported_format",
    ),
    Case(
        "text_named_png", "notes.png", "image/png", lambda: b"hello\n" * 100, "unsupported_format"
    ),
    Case("html", "page.html", "text/html", lambda: _HTML, "unsupported_format"),
    Case("svg", "logo.svg", "image/svg+xml", lambda: _SVG, "unsupported_format"),
    Case("pdf", "doc.pdf", "application/pdf", lambda: _PDF, "unsupported_format"),
    Case("zip", "photos.zip", "application/zip", zip_bytes, "unsupported_format"),
    Case("gzip_png", "photo.png.gz", "image/png", _gzip_png, "unsupported_format"),
    Case("heic", "photo.heic", "image/heic", _heic, "unsupported_format"),
    Case("avif", "photo.avif", "image/avif", _avif, "unsupported_format", note="not served"),
    Case(
        "psd",
        "layers.psd",
        "image/vnd.adobe.photoshop",
        lambda: b"8BPS" + b"\0" * 60,
        "unsupported_format",
    ),
    Case(
        "ico",
        "favicon.ico",
        "image/x-icon",
        lambda: encode(photo((32, 32)), "ICO"),
        "unsupported_format",
    ),
    Case(
        "elf",
        "photo.jpg",
        "image/jpeg",
        lambda: b"\x7fELF\x02\x01\x01" + b"\0" * 57,
        "unsupported_format",
    ),
    Case(
        "polyglot_png_magic_html",
        "page.png",
        "image/png",
        lambda: b"\x89PNG\r\n\x1a\n" + _HTML,
        "invalid_image",
        note="PNG signature, then HTML instead of chunks",
    ),
    # broken images
    Case(
        "truncated_jpeg_header",
        "cut.jpg",
        "image/jpeg",
        lambda: encode(photo(), "JPEG")[:40],
        "invalid_image",
    ),
    Case(
        "truncated_jpeg_half",
        "cut.jpg",
        "image/jpeg",
        lambda: cut(encode(photo((320, 240)), "JPEG"), 0.5),
        "invalid_image",
        "worker",
    ),
    Case(
        "truncated_png_ihdr",
        "cut.png",
        "image/png",
        lambda: encode(photo(), "PNG")[:20],
        "invalid_image",
    ),
    Case(
        "truncated_png_half",
        "cut.png",
        "image/png",
        lambda: cut(encode(photo((320, 240)), "PNG"), 0.5),
        "invalid_image",
        "worker",
    ),
    Case(
        "truncated_webp",
        "cut.webp",
        "image/webp",
        lambda: cut(encode(photo((320, 240)), "WEBP"), 0.5),
        "invalid_image",
        note="libwebp reads the header from the whole file: refused at intake",
    ),
    Case(
        "truncated_gif",
        "cut.gif",
        "image/gif",
        lambda: cut(encode(photo((320, 240)).convert("P"), "GIF"), 0.4),
        "invalid_image",
        "worker",
    ),
    Case(
        "truncated_tiff",
        "cut.tif",
        "image/tiff",
        lambda: cut(encode(photo((320, 240)), "TIFF"), 0.5),
        "invalid_image",
        "worker",
    ),
    Case(
        "truncated_bmp",
        "cut.bmp",
        "image/bmp",
        lambda: cut(encode(photo((320, 240)), "BMP"), 0.5),
        "invalid_image",
        "worker",
    ),
    Case(
        "png_bad_crc",
        "crc.png",
        "image/png",
        _png_bad_crc,
        note="Pillow does not verify IDAT CRCs; the pixels are intact",
    ),
    Case(
        "png_garbage_idat", "garbage.png", "image/png", _png_garbage_idat, "invalid_image", "worker"
    ),
    Case("png_zero_size", "zero.png", "image/png", lambda: png_raw(0, 0), "invalid_image"),
    Case(
        "png_huge_text_chunk",
        "text.png",
        "image/png",
        _png_huge_text,
        note="8 MB of uncompressed tEXt: read within the upload limit, then ignored",
    ),
    Case(
        "png_ztxt_bomb",
        "ztxt.png",
        "image/png",
        _png_ztxt_bomb,
        "invalid_image",
        note="200 MB zTXt: Pillow stops inflating text at 1 MB and refuses the file",
    ),
    # too large, judged from the header
    Case(
        "png_declares_100000x100000",
        "big.png",
        "image/png",
        lambda: png_raw(100_000, 100_000),
        "image_too_large",
    ),
    Case(
        "jpeg_declares_65000x65000",
        "big.jpg",
        "image/jpeg",
        lambda: jpeg_declaring(65_000, 65_000),
        "image_too_large",
    ),
    Case(
        "gif_declares_65535x65535",
        "big.gif",
        "image/gif",
        lambda: gif_declaring(65_535, 65_535),
        "image_too_large",
    ),
    Case(
        "bmp_declares_60000x60000",
        "big.bmp",
        "image/bmp",
        lambda: bmp_declaring(60_000, 60_000),
        "image_too_large",
    ),
    Case(
        "webp_declares_16000x16000",
        "big.webp",
        "image/webp",
        lambda: webp_declaring(16_000, 16_000),
        "image_too_large",
    ),
    Case(
        "tiff_declares_90000x90000",
        "big.tif",
        "image/tiff",
        lambda: tiff_declaring(90_000, 90_000),
        "image_too_large",
    ),
    Case(
        "png_bomb_30000",
        "bomb.png",
        "image/png",
        lambda: png_bomb(30_000),
        "image_too_large",
        note="30000×30000 1-bit, ~110 KB compressed, 900 MP",
    ),
    Case(
        "png_bomb_9000",
        "bomb9k.png",
        "image/png",
        lambda: png_bomb(9_000),
        "image_too_large",
        note="9000×9000 = 81 MP: each side allowed, the pixel count not",
    ),
    Case(
        "strip_20001x1",
        "strip.png",
        "image/png",
        lambda: encode(Image.new("L", (MAX_SIDE + 1, 1), 128), "PNG"),
        "image_too_large",
    ),
    # unusual but valid: every one of these succeeds
    Case(
        "one_pixel", "dot.png", "image/png", lambda: encode(Image.new("RGB", (1, 1), "red"), "PNG")
    ),
    Case(
        "strip_20000x1",
        "strip.png",
        "image/png",
        lambda: encode(Image.new("L", (MAX_SIDE, 1), 128), "PNG"),
    ),
    Case(
        "strip_20x20000",
        "strip.png",
        "image/png",
        lambda: encode(Image.new("RGB", (20, MAX_SIDE), (10, 200, 30)), "PNG"),
    ),
    Case(
        "gif_5000_frames",
        "anim.gif",
        "image/gif",
        lambda: gif_animation(5000),
        note="only the first frame is used",
    ),
    Case("webp_animated", "anim.webp", "image/webp", _animated_webp),
    Case(
        "tiff_1000_pages",
        "pages.tif",
        "image/tiff",
        lambda: tiff_pages(1000),
        note="only the first page is used",
    ),
    Case("cmyk_jpeg", "print.jpg", "image/jpeg", lambda: encode(photo(mode="CMYK"), "JPEG")),
    Case("grey_jpeg", "grey.jpg", "image/jpeg", lambda: encode(photo(mode="L"), "JPEG")),
    Case(
        "progressive_jpeg",
        "prog.jpg",
        "image/jpeg",
        lambda: encode(photo(), "JPEG", progressive=True),
    ),
    Case(
        "png_16bit_grey",
        "deep.png",
        "image/png",
        lambda: encode(Image.frombytes("I;16", (48, 32), bytes(range(256)) * 12), "PNG"),
    ),
    Case("png_16bit_rgb", "deep_rgb.png", "image/png", _png16_rgb),
    Case("png_1bit", "bits.png", "image/png", lambda: encode(photo(mode="1"), "PNG")),
    Case("palette_transparency", "pal.png", "image/png", _palette_transparency),
    Case("la_png", "la.png", "image/png", lambda: encode(photo(mode="LA"), "PNG")),
    Case(
        "rgba_transparent",
        "clear.png",
        "image/png",
        lambda: encode(Image.new("RGBA", (40, 30), (0, 0, 0, 0)), "PNG"),
    ),
    Case("tiff_float", "float.tif", "image/tiff", _tiff_float),
    Case("bmp", "photo.bmp", "image/bmp", lambda: encode(photo(), "BMP")),
    Case(
        "webp_lossless_alpha",
        "alpha.webp",
        "image/webp",
        lambda: encode(photo(mode="RGBA"), "WEBP", lossless=True),
    ),
    Case(
        "exif_rotated_6",
        "rot.jpg",
        "image/jpeg",
        lambda: exif_orientation(6),
        note="stored 80×48, upright 48×80",
    ),
    Case("exif_bogus_orientation", "bogus.jpg", "image/jpeg", lambda: exif_orientation(77)),
    Case("exif_orientation_zero", "zero.jpg", "image/jpeg", lambda: exif_orientation(0)),
    Case("jpeg_big_exif", "exif.jpg", "image/jpeg", _jpeg_big_exif),
    Case(
        "jpeg_trailing_garbage",
        "tail.jpg",
        "image/jpeg",
        lambda: encode(photo(), "JPEG") + random_bytes(5000, 3),
    ),
    Case(
        "polyglot_png_then_html",
        "page.png",
        "text/html",
        lambda: encode(photo(), "PNG") + _HTML,
        note="a whole PNG, then HTML after IEND",
    ),
    Case(
        "png_named_jpg",
        "photo.jpg",
        "image/jpeg",
        lambda: encode(photo(), "PNG"),
        note="the name and content type say JPEG; the bytes decide",
    ),
    Case("jpeg_as_text_plain", "photo.txt", "text/plain", lambda: encode(photo(), "JPEG")),
    Case(
        "webp_as_octet_stream", "blob", "application/octet-stream", lambda: encode(photo(), "WEBP")
    ),
)

BY_NAME = {case.name: case for case in CASES}
assert len(BY_NAME) == len(CASES), "case names must be unique"


# -- hostile requests (not files): bodies and heads that once answered 500 or HTML -------

DEEP = 100_000  # levels of nesting: far past Python's recursion limit


@dataclass(frozen=True)
class RequestCase:
    """One hostile request to the API and the problem+json answer it must get.

    ``build`` returns (body, content type). The Flask app answers these in-process
    (tests/integration/test_bad_inputs.py); nothing about them needs a worker.
    """

    name: str
    path: str
    build: Callable[[], tuple[bytes, str]]
    status: int
    code: str
    note: str = ""


def _json(text: str) -> Callable[[], tuple[bytes, str]]:
    return lambda: (text.encode(), "application/json")


def _form(fields: dict[str, str], file_field: str = "image") -> Callable[[], tuple[bytes, str]]:
    def build() -> tuple[bytes, str]:
        image = encode(photo((32, 24)), "PNG")
        return multipart_body(fields, {file_field: ("p.png", image, "image/png")})

    return build


_URL = "http://127.0.0.1:9/a.png"


def _dumps(value: object) -> Callable[[], tuple[bytes, str]]:
    # ensure_ascii writes a lone surrogate as the escape "\\ud800", as a client would
    return _json(json.dumps(value))


def _with_metadata(metadata_json: str) -> str:
    return '{"image_url": "' + _URL + '", "metadata": ' + metadata_json + "}"


_SURROGATE_URL = "http://example.com/\ud800.png"  # a lone surrogate (JSON: "\\ud800")
_DEEP_ARRAY = "[" * DEEP + "]" * DEEP
_DEEP_OBJECT = '{"a":' * DEEP + "1" + "}" * DEEP

REQUEST_CASES: tuple[RequestCase, ...] = (
    RequestCase("jobs_deep_array", "/v1/jobs", _json(_DEEP_ARRAY), 400, "invalid_request"),
    RequestCase("jobs_deep_array_unclosed", "/v1/jobs", _json("[" * DEEP), 400, "invalid_request"),
    RequestCase("jobs_deep_object", "/v1/jobs", _json(_DEEP_OBJECT), 400, "invalid_request"),
    RequestCase(
        "jobs_33_levels",
        "/v1/jobs",
        _json(_with_metadata('{"a":' * 32 + "1" + "}" * 32)),
        400,
        "invalid_request",
        note="within the recursion limit, past MAX_DEPTH",
    ),
    RequestCase(
        "jobs_metadata_9_levels",
        "/v1/jobs",
        _json(_with_metadata('{"a":' * 9 + "1" + "}" * 9)),
        400,
        "invalid_request",
        note="metadata nests at most 8 levels",
    ),
    RequestCase("batches_deep_array", "/v1/batches", _json(_DEEP_ARRAY), 400, "invalid_request"),
    RequestCase(
        "batches_deep_items",
        "/v1/batches",
        _json('{"items": ' + _DEEP_ARRAY + "}"),
        400,
        "invalid_request",
    ),
    RequestCase("uploads_deep_array", "/v1/uploads", _json(_DEEP_ARRAY), 400, "invalid_request"),
    RequestCase(
        "jobs_form_metadata_deep",
        "/v1/jobs",
        _form({"model": "u2netp", "metadata": _DEEP_ARRAY}),
        400,
        "invalid_request",
    ),
    RequestCase(
        "jobs_form_options_deep",
        "/v1/jobs",
        _form({"options": _DEEP_ARRAY}),
        400,
        "invalid_request",
    ),
    RequestCase(
        "jobs_form_field_600k",
        "/v1/jobs",
        _form({"options": _DEEP_OBJECT}),
        413,
        "payload_too_large",
        note="a form field (not a file) over werkzeug's 500 KB max_form_memory_size",
    ),
    RequestCase(
        "batches_form_metadata_deep",
        "/v1/batches",
        _form({"model": "u2netp", "metadata": "{" * DEEP}, "images"),
        400,
        "invalid_request",
    ),
    RequestCase(
        "jobs_form_metadata_huge",
        "/v1/jobs",
        _form({"metadata": '{"a": "%s"}' % ("x" * 200_000)}),
        400,
        "invalid_request",
    ),
    RequestCase(
        "jobs_image_url_surrogate",
        "/v1/jobs",
        _dumps({"image_url": _SURROGATE_URL}),
        422,
        "url_not_allowed",
    ),
    RequestCase(
        "jobs_webhook_url_surrogate",
        "/v1/jobs",
        _dumps({"image_url": _URL, "webhook_url": _SURROGATE_URL}),
        422,
        "url_not_allowed",
    ),
    RequestCase(
        "jobs_metadata_surrogate",
        "/v1/jobs",
        _dumps({"image_url": _URL, "metadata": {"name": "\udc80.png"}}),
        400,
        "invalid_request",
    ),
    RequestCase(
        "batches_item_image_url_surrogate",
        "/v1/batches",
        _dumps({"items": [{"image_url": _SURROGATE_URL}]}),
        422,
        "url_not_allowed",
    ),
    RequestCase(
        "batches_webhook_url_surrogate",
        "/v1/batches",
        _dumps({"items": [{"image_url": _URL}], "webhook_url": _SURROGATE_URL}),
        422,
        "url_not_allowed",
    ),
)

REQUEST_CASES += (
    RequestCase(
        "jobs_upload_key_surrogate",
        "/v1/jobs",
        _dumps({"upload_key": "uploads/public/upl_\ud800"}),
        404,
        "not_found",
        note="the storage client cannot encode it: refused before it is asked",
    ),
    RequestCase(
        "batches_item_upload_key_surrogate",
        "/v1/batches",
        _dumps({"items": [{"upload_key": "uploads/public/upl_\ud800"}]}),
        422,
        "upload_not_found",
    ),
    RequestCase(
        "jobs_bg_upload_key_surrogate",
        "/v1/jobs",
        _dumps({"image_url": _URL, "options": {"bg_upload_key": "uploads/public/\ud800"}}),
        422,
        "invalid_option",
        note="was queued, then failed processing_failed in botocore",
    ),
    RequestCase(
        "batches_item_bg_upload_key_surrogate",
        "/v1/batches",
        _dumps({"items": [{"image_url": _URL, "options": {"bg_upload_key": "\ud800"}}]}),
        422,
        "invalid_option",
    ),
    RequestCase(
        "jobs_option_surrogate",
        "/v1/jobs",
        _dumps({"image_url": _URL, "options": {"model": "\ud800", "bg_color": "\ud800"}}),
        422,
        "invalid_option",
    ),
)

REQUESTS_BY_NAME = {case.name: case for case in REQUEST_CASES}
assert len(REQUESTS_BY_NAME) == len(REQUEST_CASES), "request case names must be unique"


@dataclass(frozen=True)
class RawCase:
    """A request written byte by byte for a real HTTP server (gunicorn), where the
    server's own parser answers before Flask: what ``cutout api`` must answer."""

    name: str
    head: bytes
    status: int
    code: str
    body: bytes = b""
    chunked_json_bytes: int = 0  # > 0: send a chunked JSON body of this many bytes


def raw_cases(max_body: int) -> tuple[RawCase, ...]:
    """The raw cases for a server whose JSON body limit is ``max_body`` bytes."""
    return (
        RawCase(
            "request_line_20k",
            b"GET /v1/jobs/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            414,
            "uri_too_long",
        ),
        RawCase(
            "header_64k",
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 65_536 + b"\r\n\r\n",
            431,
            "header_too_large",
        ),
        RawCase(
            "header_count_500",
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(500))
            + b"\r\n",
            431,
            "header_too_large",
        ),
        RawCase("bad_request_line", b"NONSENSE\r\n\r\n", 400, "bad_request"),
        RawCase(
            "bad_header_line",
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
            400,
            "bad_request",
        ),
        RawCase(
            "chunked_json_over_limit",
            b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            b"\r\nTransfer-Encoding: chunked\r\n\r\n",
            413,
            "payload_too_large",
            chunked_json_bytes=max_body + 200_000,
        ),
    )


def normal_image() -> bytes:
    """The ordinary photo a healthy service must still process after the corpus."""
    return encode(photo((128, 96)), "JPEG", quality=90)


def multipart_body(
    fields: dict[str, str],
    files: dict[str, tuple[str, bytes, str]],
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """A multipart/form-data body with a chosen (or random) boundary: (body, content type)."""
    return multipart(fields, files, boundary or "corpus" + secrets.token_hex(8))


def write(directory: Path, cases: tuple[Case, ...] = CASES) -> dict[str, Path]:
    """Write every case as ``<name>__<filename>`` into ``directory``; name → path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case in cases:
        path = directory / f"{case.name}__{case.filename}"
        path.write_bytes(case.build())
        paths[case.name] = path
    return paths


if __name__ == "__main__":  # pragma: no cover - a helper for people
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "corpus-out")
    for name, path in write(target).items():
        print(f"{os.path.getsize(path):>10}  {BY_NAME[name].code or 'succeeds':<20} {path}")
