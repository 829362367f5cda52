"""Parsers of the catalogue options (issue 16): subject scale and position, crop margins
and regions given in pixels or percent, background images, output size caps.

Each parser takes a client's value (a form string or a JSON value) and returns the
canonical value that :class:`shared.options.Options` stores, so that a job's options
parse back to the same value. Every problem raises InvalidOption naming the option.
The geometry itself is applied by the worker (``worker/engine/render.py``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from shared import netaddress
from shared.errors import InvalidOption, UrlNotAllowed
from shared.keys import is_input_of, is_upload_of

#: a crop margin side is clamped to this many pixels (and to half the subject's size),
#: as remove.bg documents for ``crop_margin``; it also bounds the output's growth
MAX_CROP_MARGIN_PX = 500
#: remove.bg's ``scale`` range: 10% to 100% of the canvas
MIN_SCALE = 0.1
#: the smallest and largest pixel cap ``max_megapixels`` accepts
MIN_MEGAPIXELS = 0.01
MAX_MEGAPIXELS = 1000.0
MAX_KEY_LENGTH = 1024

_LENGTH_RE = re.compile(r"^(\d+(?:\.\d+)?)(px|%)?$")

Length = tuple[float, str]  # (value, "px" | "%")
#: a length's largest value: far beyond any image side (roi and margins are clamped to the
#: image anyway), small enough that its canonical text stays short
MAX_LENGTH = 1_000_000.0


def _number(value: float) -> str:
    """A length's canonical number: at most 4 decimals, never an exponent (``1e-05`` and
    ``1e+06`` are no lengths: the canonical text must parse again, in the worker)."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _lengths(name: str, value: Any, counts: tuple[int, ...]) -> list[Length]:
    """Whitespace- or comma-separated lengths (``30px``, ``10%``, a bare number = px)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        parts = [_number(value) if math.isfinite(value) else str(value)]
    elif isinstance(value, str):
        parts = [p for p in re.split(r"[\s,]+", value.strip()) if p]
    else:
        parts = []
    if len(parts) not in counts:
        raise InvalidOption(
            f"{name} takes {' or '.join(map(str, counts))} values (each like 30px or 10%), "
            f"got {value!r}",
            option=name,
        )
    out: list[Length] = []
    for part in parts:
        match = _LENGTH_RE.match(part.lower())
        if not match:
            raise InvalidOption(f"{name}: {part!r} is not a length like 30px or 10%", option=name)
        number = round(min(float(match.group(1)), MAX_LENGTH), 4)
        out.append((number, match.group(2) or "px"))
    return out


def _text(lengths: list[Length]) -> str:
    return " ".join(f"{_number(v)}{unit}" for v, unit in lengths)


def parse_crop_margin(name: str, value: Any) -> str | None:
    """remove.bg's ``crop_margin``: 1 value (all sides), 2 (top/bottom, left/right) or 4
    (top, right, bottom, left); pixels or percent of the subject's size. Canonical: 4
    values, ``"10px 5% 10px 5%"``; ``""``/``0`` → None."""
    if value is None or value == "":
        return None
    lengths = _lengths(name, value, (1, 2, 4))
    for number, unit in lengths:
        if unit == "%" and number > 50:
            raise InvalidOption(f"{name}: a side is at most 50% of the subject", option=name)
    if len(lengths) == 1:
        lengths *= 4
    elif len(lengths) == 2:
        lengths = [lengths[0], lengths[1], lengths[0], lengths[1]]
    if all(number == 0 for number, _ in lengths):
        return None
    return _text(lengths)


def margin_sides(spec: str, subject: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixels (top, right, bottom, left) of a canonical crop margin around a subject of
    ``subject`` (width, height) pixels, each clamped to half the subject's size along
    that axis and to :data:`MAX_CROP_MARGIN_PX`."""
    width, height = subject
    sides = []
    for index, (number, unit) in enumerate(_lengths("crop_margin", spec, (4,))):
        along = height if index % 2 == 0 else width
        pixels = number * along / 100 if unit == "%" else number
        sides.append(round(min(pixels, along * 0.5, MAX_CROP_MARGIN_PX)))
    return sides[0], sides[1], sides[2], sides[3]


def parse_roi(name: str, value: Any) -> str | None:
    """remove.bg's ``roi``: ``"x1 y1 x2 y2"``, each in pixels or percent of the image;
    canonical text, None for the default (the whole image)."""
    if value is None or value == "":
        return None
    lengths = _lengths(name, value, (4,))
    for number, unit in lengths:
        if unit == "%" and number > 100:
            raise InvalidOption(f"{name}: percentages go up to 100%", option=name)
    if lengths == [(0, "%"), (0, "%"), (100, "%"), (100, "%")]:
        return None
    return _text(lengths)


def roi_box(spec: str, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixel box (left, top, right, bottom) of a canonical roi in an image of
    ``size``, clamped to the image (possibly empty)."""
    width, height = size
    coords = []
    for index, (number, unit) in enumerate(_lengths("roi", spec, (4,))):
        along = width if index % 2 == 0 else height
        pixels = number * along / 100 if unit == "%" else number
        coords.append(round(min(max(pixels, 0), along)))
    left, top, right, bottom = coords
    return left, top, max(left, right), max(top, bottom)


def parse_scale(name: str, value: Any) -> float | None:
    """``scale``: the share of the canvas the subject's box fills along its limiting
    side, ``10%``–``100%`` or 0.1–1.0; ``original`` (or empty) → None (not scaled)."""
    if value is None or value == "" or (isinstance(value, str) and value.strip() == "original"):
        return None
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise InvalidOption(
            f"{name} must be original, a percentage (10% to 100%) or 0.1 to 1, got {value!r}",
            option=name,
        ) from None
    if not MIN_SCALE <= number <= 1.0:
        raise InvalidOption(f"{name} must be between 10% and 100%, got {value!r}", option=name)
    return round(number, 4)


def parse_position(name: str, value: Any) -> tuple[float, float] | None:
    """``position``: ``original`` (None), ``center``, one percentage (both axes) or two
    (horizontal, vertical): 0% puts the subject's box at the left/top edge, 100% at the
    right/bottom edge. Canonical: a pair of fractions."""
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) and len(value) == 2:
        value = f"{value[0]} {value[1]}"
    text = str(value).strip().lower()
    if text == "original":
        return None
    if text in ("center", "centre"):
        return (0.5, 0.5)
    parts = [p for p in re.split(r"[\s,]+", text) if p]
    fractions: list[float] = []
    for part in parts:
        try:
            number = float(part[:-1]) / 100 if part.endswith("%") else float(part)
        except ValueError:
            number = -1.0
        if not 0.0 <= number <= 1.0:
            fractions = []
            break
        fractions.append(round(number, 4))
    if len(fractions) == 1:
        fractions *= 2
    if len(fractions) != 2 or len(parts) > 2:
        raise InvalidOption(
            f"{name} must be original, center, or one or two percentages (0% to 100%), "
            f"got {value!r}",
            option=name,
        )
    return (fractions[0], fractions[1])


def parse_megapixels(name: str, value: Any) -> float | None:
    """``max_megapixels``: downscale the input to at most this many million pixels."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidOption(f"{name} must be a number, got {value!r}", option=name) from None
    if not MIN_MEGAPIXELS <= number <= MAX_MEGAPIXELS:
        raise InvalidOption(
            f"{name} must be between {MIN_MEGAPIXELS} and {MAX_MEGAPIXELS:g}, got {value!r}",
            option=name,
        )
    return number


def parse_bg_image_url(name: str, value: Any) -> str | None:
    """An http(s) URL of a background image; its host is judged by the SSRF guard again
    where the worker connects (``shared.netaddress``)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidOption(f"{name} must be a URL string", option=name)
    try:
        netaddress.parse_url(value.strip())
    except UrlNotAllowed as exc:
        raise InvalidOption(f"{name}: {exc.message}", option=name) from None
    return value.strip()


def parse_upload_key(name: str, value: Any) -> str | None:
    """An ``upload_key`` from ``POST /v1/uploads`` (the tenant is checked at intake and
    again by the worker)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_KEY_LENGTH or not plain_key(value):
        raise InvalidOption(f"{name} must be an upload_key from POST /v1/uploads", option=name)
    return value


def plain_key(key: str) -> bool:
    """No ``..`` and printable ASCII only, as every key the service issues: a lone
    surrogate cannot even be encoded for the storage client."""
    return key.isascii() and key.isprintable() and ".." not in key


def background_key_allowed(key: str, tenant: str) -> bool:
    """Whether ``key`` lies in ``tenant``'s uploads (``POST /v1/uploads``) or inputs
    (where ``/v1.0/removebg`` keeps a ``bg_image_file``); another's reads as missing."""
    return (is_upload_of(key, tenant) or is_input_of(key, tenant)) and plain_key(key)
