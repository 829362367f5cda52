"""The typed values of the processing options and the parsers that make them.

Each parser takes a client's value (a form string, a query string, a command-line flag or
a JSON value) and returns the typed value :class:`shared.contract.options.Options` holds, or None
for "not set"; every problem raises :class:`~shared.errors.InvalidOption` naming the
option. The value classes (:class:`Box`, :class:`Margin`, :class:`Position`,
:class:`Colour`, :class:`Size`) are tuples: ``text()`` is their canonical stored form,
which parses back to the same value, and the renderer (``worker/engine/render.py``)
asks them for pixels instead of parsing text again.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from shared.contract.catalogue import plain_key
from shared.errors import InvalidOption, UrlNotAllowed
from shared.net import address as netaddress

MAX_CANVAS_SIDE = 10_000
#: a crop margin side is clamped to this many pixels (and to half the subject's size),
#: as remove.bg documents for ``crop_margin``; it also bounds the output's growth
MAX_CROP_MARGIN_PX = 500
#: remove.bg's ``scale`` range: 10% to 100% of the canvas
MIN_SCALE = 0.1
#: the smallest and largest pixel cap ``max_megapixels`` accepts
MIN_MEGAPIXELS = 0.01
MAX_MEGAPIXELS = 1000.0
MAX_KEY_LENGTH = 1024
#: a length's largest value: far beyond any image side (roi and margins are clamped to the
#: image anyway), small enough that its canonical text stays short
MAX_LENGTH = 1_000_000.0

_LENGTH_RE = re.compile(r"^(\d+(?:\.\d+)?)(px|%)?$")
_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n", ""}


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidOption(f"{name} must be a boolean (true or false), got {value!r}", option=name)


def parse_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise InvalidOption(f"{name} must be an integer, got {value!r}", option=name)
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise InvalidOption(f"{name} must be an integer, got {value!r}", option=name)
    if not lo <= number <= hi:
        raise InvalidOption(f"{name} must be between {lo} and {hi}, got {number}", option=name)
    return number


# -- lengths: roi and crop_margin ---------------------------------------------------------


def _number(value: float) -> str:
    """A length's canonical number: at most 4 decimals, never an exponent (``1e-05`` and
    ``1e+06`` are no lengths: the canonical text must parse again)."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


class Length(NamedTuple):
    """A length in pixels (``unit == "px"``) or percent of a reference size (``"%"``)."""

    value: float
    unit: str

    def pixels(self, along: int) -> float:
        return self.value * along / 100 if self.unit == "%" else self.value

    def text(self) -> str:
        return f"{_number(self.value)}{self.unit}"


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
        out.append(Length(number, match.group(2) or "px"))
    return out


class Box(NamedTuple):
    """remove.bg's ``roi``: the region ``x1 y1 x2 y2``, each in pixels or percent of the
    image's width (x) or height (y)."""

    left: Length
    top: Length
    right: Length
    bottom: Length

    @classmethod
    def parse(cls, name: str, value: Any) -> Box | None:
        """The region, or None for the default (the whole image)."""
        if isinstance(value, Box):
            return value
        if value is None or value == "":
            return None
        lengths = _lengths(name, value, (4,))
        for number, unit in lengths:
            if unit == "%" and number > 100:
                raise InvalidOption(f"{name}: percentages go up to 100%", option=name)
        if lengths == [(0, "%"), (0, "%"), (100, "%"), (100, "%")]:
            return None
        return cls(*lengths)

    def text(self) -> str:
        return " ".join(length.text() for length in self)

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The pixel box (left, top, right, bottom) in an image of ``size``, clamped to
        the image (possibly empty)."""
        coords = []
        for index, length in enumerate(self):
            along = size[index % 2]
            coords.append(round(min(max(length.pixels(along), 0), along)))
        left, top, right, bottom = coords
        return left, top, max(left, right), max(top, bottom)


class Margin(NamedTuple):
    """remove.bg's ``crop_margin``: the sides (top, right, bottom, left) in pixels or
    percent of the subject's height (top, bottom) or width (right, left)."""

    top: Length
    right: Length
    bottom: Length
    left: Length

    @classmethod
    def parse(cls, name: str, value: Any) -> Margin | None:
        """1 value (all sides), 2 (top/bottom, left/right) or 4 (top, right, bottom,
        left); ``""``/``0`` → None."""
        if isinstance(value, Margin):
            return value
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
        return cls(*lengths)

    def text(self) -> str:
        return " ".join(length.text() for length in self)

    def pixels(self, subject: tuple[int, int]) -> tuple[int, int, int, int]:
        """Pixels (top, right, bottom, left) around a subject of ``subject`` (width,
        height) pixels, each clamped to half the subject's size along that axis and to
        :data:`MAX_CROP_MARGIN_PX`."""
        width, height = subject
        sides = []
        for index, length in enumerate(self):
            along = height if index % 2 == 0 else width
            sides.append(round(min(length.pixels(along), along * 0.5, MAX_CROP_MARGIN_PX)))
        return sides[0], sides[1], sides[2], sides[3]


# -- placement -------------------------------------------------------------------------------


class Position(NamedTuple):
    """Where the subject's box goes, as fractions: (0, 0) at the top left edge, (1, 1) at
    the bottom right."""

    x: float
    y: float

    @classmethod
    def parse(cls, name: str, value: Any) -> Position | None:
        """``original`` (None), ``center``, one percentage (both axes) or two
        (horizontal, vertical); also a JSON list of two."""
        if isinstance(value, Position):
            return value
        if value is None or value == "":
            return None
        if isinstance(value, list | tuple) and len(value) == 2:
            value = f"{value[0]} {value[1]}"
        text = str(value).strip().lower()
        if text == "original":
            return None
        if text in ("center", "centre"):
            return cls(0.5, 0.5)
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
        return cls(fractions[0], fractions[1])

    def text(self) -> str:
        return f"{self.x * 100:g}% {self.y * 100:g}%"


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


class Colour(NamedTuple):
    """An RGBA colour, 0–255 each."""

    red: int
    green: int
    blue: int
    alpha: int

    @classmethod
    def parse(cls, name: str, value: Any) -> Colour | None:
        """``#RRGGBB``, ``#RRGGBBAA`` or ``r,g,b[,a]`` (also a JSON list of 3 or 4 ints)."""
        if value is None or value == "":
            return None
        if isinstance(value, list | tuple):
            parts = list(value)
        elif isinstance(value, str):
            text = value.strip()
            if re.fullmatch(r"#?[0-9a-fA-F]{6}([0-9a-fA-F]{2})?", text):
                text = text.lstrip("#")
                parts = [int(text[i : i + 2], 16) for i in range(0, len(text), 2)]
            else:
                parts = [p.strip() for p in text.split(",")]
        else:
            parts = []
        if len(parts) not in (3, 4):
            raise InvalidOption(
                f"{name} must be #RRGGBB, #RRGGBBAA or r,g,b[,a], got {value!r}", option=name
            )
        channels = [parse_int(name, p, 0, 255) for p in parts]
        if len(channels) == 3:
            channels.append(255)
        return cls(*channels)

    def text(self) -> str:
        return "#{:02x}{:02x}{:02x}{:02x}".format(*self)


class Size(NamedTuple):
    """A canvas of ``width`` × ``height`` pixels."""

    width: int
    height: int

    @classmethod
    def parse(cls, name: str, value: Any) -> Size | None:
        """``WIDTHxHEIGHT``, each side 1–:data:`MAX_CANVAS_SIDE` (a Python pair too)."""
        if value is None or value == "":
            return None
        text = "{}x{}".format(*value) if isinstance(value, tuple) and len(value) == 2 else value
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
        if not match:
            raise InvalidOption(f"{name} must be WIDTHxHEIGHT, got {value!r}", option=name)
        width, height = int(match.group(1)), int(match.group(2))
        if not (1 <= width <= MAX_CANVAS_SIDE and 1 <= height <= MAX_CANVAS_SIDE):
            raise InvalidOption(
                f"{name} sides must be between 1 and {MAX_CANVAS_SIDE}, got {width}x{height}",
                option=name,
            )
        return cls(width, height)

    def text(self) -> str:
        return f"{self.width}x{self.height}"


# -- inputs and limits ---------------------------------------------------------------------


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
    where the worker connects (``shared.net.address``)."""
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
