"""remove.bg's request parameters → our options (``POST /v1.0/removebg``, api/removebg.py).

What remove.bg's documentation names is accepted under its own name: renamed where only
the name differs, translated where the meaning does (``size`` → ``max_megapixels``,
``channels`` → ``mask_only``, ``format=auto`` → PNG or JPG), validated with no effect on
the pixels where we have nothing to do (docs/removebg.md says why). Two of ours are
extensions remove.bg does not have: ``model`` and ``score`` (the quality score's level,
answered in ``Cutout-Score*`` headers). Every refusal is an ``InvalidOption`` naming
remove.bg's parameter.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from PIL import ImageColor

from shared.contract.options import ModelCheck, Options, parse_options
from shared.contract.optionvalues import parse_bool
from shared.errors import InvalidOption

#: remove.bg's ``size`` → at most this many megapixels (their documented caps)
SIZES: dict[str, float] = {
    "preview": 0.25,
    "small": 0.25,
    "regular": 0.25,
    "medium": 1.5,
    "hd": 4.0,
    "full": 25.0,
    "4k": 25.0,
    "auto": 25.0,
    "50mp": 50.0,
}
#: remove.bg's ``type`` values: accepted, answered in ``X-Type``, no effect on the pixels
RemoveBgType = Literal[
    "auto",
    "person",
    "product",
    "animal",
    "car",
    "car_interior",
    "car_part",
    "transportation",
    "graphic",
    "graphics",
    "other",
]
RemoveBgTypeLevel = Literal["none", "1", "2", "latest"]
TYPES = frozenset(get_args(RemoveBgType))
TYPE_LEVELS = frozenset(get_args(RemoveBgTypeLevel))
FORMATS = {"auto": None, "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp", "zip": "zip"}
SOURCES = ("image_file", "image_file_b64", "image_url")
# remove.bg's name → ours, for those that only change name
RENAMED = {
    "crop_margin": "crop_margin",
    "scale": "scale",
    "position": "position",
    "roi": "roi",
    "add_shadow": "shadow",
    "bg_image_url": "bg_image_url",
    "model": "model",  # ours, not remove.bg's: u2net (default) or u2netp
    "score": "score",  # ours: the quality score's level, basic (default) or full
}
# accepted and validated, with no effect on the pixels (docs/removebg.md says why)
ACCEPTED = {"type", "type_level", "semitransparency"}
KNOWN = (
    set(SOURCES)
    | set(RENAMED)
    | ACCEPTED
    | {
        "size",
        "format",
        "channels",
        "bg_color",
        "bg_image_file",
        "crop",
    }
)
# a body of JSON null or an empty value means "not given" (clients send every key)
_UNSET = (None, "", "undefined", "null")


def is_given(value: Any) -> bool:
    return not (value is None or (isinstance(value, str) and value.strip() in _UNSET))


def parse_bg_color(value: Any) -> str:
    """remove.bg's colours: hex with or without ``#`` in 3, 4, 6 or 8 digits, or a colour
    name (``green``); our ``r,g,b[,a]`` too. Returns our ``#RRGGBBAA``."""
    text = str(value).strip()
    digits = text.lstrip("#")
    if re.fullmatch(r"[0-9a-fA-F]{3,4}", digits):
        digits = "".join(c * 2 for c in digits)
    if re.fullmatch(r"[0-9a-fA-F]{6}([0-9a-fA-F]{2})?", digits):
        return "#" + digits.lower() + ("" if len(digits) == 8 else "ff")
    if re.fullmatch(r"[a-zA-Z]+", text):
        try:
            rgb = ImageColor.getrgb(text)
        except ValueError:
            raise InvalidOption(f"bg_color: unknown colour {text!r}", option="bg_color") from None
        return "#{:02x}{:02x}{:02x}ff".format(*rgb[:3])
    return text  # r,g,b[,a]: our parser judges it


def removebg_options(
    params: dict[str, Any], bg_upload_key: str | None = None, models: ModelCheck | None = None
) -> Options:
    """Our options for remove.bg's parameters (InvalidOption names the bad one);
    ``bg_upload_key``: where an uploaded ``bg_image_file`` will be stored; ``models``:
    the caller's custom model names (``parse_options``)."""
    unknown = sorted(k for k, v in params.items() if k not in KNOWN and is_given(v))
    if unknown:
        raise InvalidOption(f"unknown parameter(s): {', '.join(unknown)}", option=unknown[0])
    given = {k: v for k, v in params.items() if is_given(v)}
    values: dict[str, Any] = {}
    size = str(given.get("size", "preview")).strip().lower()
    if size not in SIZES:
        raise InvalidOption(f"size must be one of {', '.join(SIZES)}, got {size!r}", option="size")
    values["max_megapixels"] = SIZES[size]
    kind = str(given.get("type", "auto")).strip().lower()
    if kind not in TYPES:
        raise InvalidOption(f"type must be one of {', '.join(sorted(TYPES))}", option="type")
    if str(given.get("type_level", "1")).strip().lower() not in TYPE_LEVELS:
        raise InvalidOption("type_level must be none, 1, 2 or latest", option="type_level")
    if "semitransparency" in given:
        parse_bool("semitransparency", given["semitransparency"])
    channels = str(given.get("channels", "rgba")).strip().lower()
    if channels not in ("rgba", "alpha"):
        raise InvalidOption("channels must be rgba or alpha", option="channels")
    values["mask_only"] = channels == "alpha"
    if "crop" in given:
        values["crop"] = parse_bool("crop", given["crop"])
    for theirs, ours in RENAMED.items():
        if theirs in given:
            values[ours] = given[theirs]
    if "bg_color" in given:
        values["bg_color"] = parse_bg_color(given["bg_color"])
    fmt = str(given.get("format", "auto")).strip().lower()
    if fmt not in FORMATS:
        raise InvalidOption(f"format must be one of {', '.join(FORMATS)}", option="format")
    if bg_upload_key is not None:
        if "bg_color" in given or "bg_image_url" in given:
            raise InvalidOption("one background at a time", option="bg_image_file")
        values["bg_upload_key"] = bg_upload_key
    opaque = "bg_image_url" in given or bg_upload_key is not None
    if "bg_color" in values and values["bg_color"].startswith("#"):
        opaque = opaque or values["bg_color"].endswith("ff")
    if FORMATS[fmt] is None:
        # auto: PNG where the result has transparent regions, JPG where it has none
        values["format"] = "jpeg" if opaque and not values["mask_only"] else "png"
    else:
        values["format"] = FORMATS[fmt]
        plain = not values["mask_only"] and "bg_color" not in values and not opaque
        if values["format"] == "jpeg" and plain:
            values["bg_color"] = "#ffffffff"  # JPG has no transparency: white, as a page
    return parse_options(values, models=models)
