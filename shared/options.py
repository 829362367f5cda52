"""Processing options: one parser shared by the API (forms, JSON), the CLI and the worker.

Names follow docs/api.md's options table. Values arrive as strings (forms, query strings,
command-line flags) or as JSON values; both parse to the same :class:`Options`. Every
problem raises :class:`~shared.errors.InvalidOption` naming the option.
"""

from __future__ import annotations

import contextvars
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from shared import catalogue
from shared.errors import InvalidOption
from shared.modelfile import NAME_RE

MODELS = ("u2net", "u2netp")
#: which custom model names (shared/modelfile.py) may be used: the API sets it per request
#: (the caller's registered models), the worker and the CLI once per process
#: (set_custom_model_check); unset, only MODELS are accepted
CUSTOM_MODEL_CHECK: contextvars.ContextVar[Callable[[str], bool] | None] = contextvars.ContextVar(
    "custom_model_check", default=None
)
_process_check: list[Callable[[str], bool]] = []


def set_custom_model_check(check: Callable[[str], bool] | None) -> None:
    """The whole process's check of custom model names (a worker, a command)."""
    _process_check[:] = [check] if check else []


FORMATS = {
    "png": "image/png",
    "webp": "image/webp",
    "jpeg": "image/jpeg",
    "zip": "application/zip",  # color.jpg + alpha.png, as remove.bg's ZIP format
}
EXTENSIONS = {"png": "png", "webp": "webp", "jpeg": "jpg", "zip": "zip"}
MAX_CANVAS_SIDE = 10_000
MAX_MARGIN = 10_000
#: the levels of the ``score`` option (docs/quality.md)
SCORES = ("basic", "full")

RGBA = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class Options:
    """Validated processing options with docs/api.md's defaults."""

    model: str = "u2net"
    format: str = "png"
    mask_only: bool = False
    bg_color: RGBA | None = None
    post_process: bool = False
    alpha_matting: bool = False
    alpha_matting_foreground_threshold: int = 240
    alpha_matting_background_threshold: int = 10
    alpha_matting_erode_size: int = 10
    crop: bool = False
    margin: int = 0
    canvas: tuple[int, int] | None = None
    fill: float = 0.85
    fast: bool = False
    #: the refined cutout (worker/engine/refine.py, docs/refine.md); not rembg-identical
    refine: bool = False
    # catalogue outputs (issue 16; parsers in shared/catalogue.py)
    bg_image_url: str | None = None
    bg_upload_key: str | None = None
    shadow: bool = False
    scale: float | None = None
    position: tuple[float, float] | None = None
    crop_margin: str | None = None
    roi: str | None = None
    max_megapixels: float | None = None
    #: how the cutout's quality is estimated (worker/engine/quality.py, docs/quality.md):
    #: ``basic`` from the model's own map, ``full`` with a second model's opinion
    score: str = "basic"

    @property
    def has_background(self) -> bool:
        return self.bg_color is not None or bool(self.bg_image_url or self.bg_upload_key)

    @property
    def content_type(self) -> str:
        return FORMATS[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the job object's ``options``); parses back to the same value."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "bg_color" and value is not None:
                value = "#{:02x}{:02x}{:02x}{:02x}".format(*value)
            elif field.name == "canvas" and value is not None:
                value = f"{value[0]}x{value[1]}"
            elif field.name == "position" and value is not None:
                value = f"{value[0] * 100:g}% {value[1] * 100:g}%"
            out[field.name] = value
        return out


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(Options))
_BOOLS = ("mask_only", "post_process", "alpha_matting", "crop", "fast", "shadow", "refine")
_CATALOGUE: dict[str, Any] = {
    "bg_image_url": catalogue.parse_bg_image_url,
    "bg_upload_key": catalogue.parse_upload_key,
    "scale": catalogue.parse_scale,
    "position": catalogue.parse_position,
    "crop_margin": catalogue.parse_crop_margin,
    "roi": catalogue.parse_roi,
    "max_megapixels": catalogue.parse_megapixels,
}
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


def parse_color(name: str, value: Any) -> RGBA:
    """``#RRGGBB``, ``#RRGGBBAA`` or ``r,g,b[,a]`` (also a JSON list of 3 or 4 ints)."""
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
    return (channels[0], channels[1], channels[2], channels[3])


def parse_canvas(name: str, value: Any) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(value))
    if not match:
        raise InvalidOption(f"{name} must be WIDTHxHEIGHT, got {value!r}", option=name)
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_CANVAS_SIDE and 1 <= height <= MAX_CANVAS_SIDE):
        raise InvalidOption(
            f"{name} sides must be between 1 and {MAX_CANVAS_SIDE}, got {width}x{height}",
            option=name,
        )
    return width, height


def parse_options(
    values: Mapping[str, Any] | None,
    *,
    base: Options | None = None,
    ignore_unknown: bool = False,
) -> Options:
    """Parse and validate options; ``base`` supplies defaults (batch-level options).

    Raises InvalidOption for an unknown name (unless ``ignore_unknown``), a bad value, or
    a combination that cannot work (``format=jpeg`` without ``bg_color``).
    """
    parsed: dict[str, Any] = (
        {f.name: getattr(base, f.name) for f in dataclasses.fields(base)} if base else {}
    )
    for key, value in (values or {}).items():
        if key not in OPTION_NAMES:
            if ignore_unknown:
                continue
            raise InvalidOption(f"unknown option {key!r}", option=key)
        if key in _CATALOGUE:
            parsed[key] = _CATALOGUE[key](key, value)
            continue
        if value is None and key in ("bg_color", "canvas"):
            parsed[key] = None
            continue
        if key == "model":
            model = str(value).strip()
            check = CUSTOM_MODEL_CHECK.get() or (_process_check[0] if _process_check else None)
            # a registered name is short and plain (shared/modelfile.py): anything else is
            # refused here, before it reaches a store lookup
            plain = NAME_RE.fullmatch(model) is not None
            if model not in MODELS and not (check is not None and plain and check(model)):
                raise InvalidOption(
                    f"model must be one of {', '.join(MODELS)} or a model registered for "
                    f"you, got {value!r}",
                    option=key,
                )
            parsed[key] = model
        elif key == "format":
            fmt = str(value).strip().lower()
            fmt = "jpeg" if fmt == "jpg" else fmt
            if fmt not in FORMATS:
                raise InvalidOption(
                    f"format must be one of {', '.join(FORMATS)}, got {value!r}", option=key
                )
            parsed[key] = fmt
        elif key in _BOOLS:
            parsed[key] = parse_bool(key, value)
        elif key == "score":
            level = str(value).strip().lower()
            if level not in SCORES:
                raise InvalidOption(
                    f"score must be one of {', '.join(SCORES)}, got {value!r}", option=key
                )
            parsed[key] = level
        elif key.startswith("alpha_matting_"):
            parsed[key] = parse_int(key, value, 0, 255)
        elif key == "margin":
            parsed[key] = parse_int(key, value, 0, MAX_MARGIN)
        elif key == "bg_color":
            parsed[key] = None if value == "" else parse_color(key, value)
        elif key == "canvas":
            parsed[key] = None if value == "" else parse_canvas(key, value)
        elif key == "fill":
            try:
                fill = float(value)
            except (TypeError, ValueError):
                raise InvalidOption(f"fill must be a number, got {value!r}", option=key) from None
            if not 0.0 < fill <= 1.0:
                raise InvalidOption(f"fill must be in (0, 1], got {fill}", option=key)
            parsed[key] = fill
    options = Options(**parsed)
    # a base that already had a scale already decided its position (batch-level options)
    parsed_keys = set(values or {}) | ({"position"} if base and base.scale is not None else set())
    if options.format == "jpeg" and not options.has_background and not options.mask_only:
        raise InvalidOption(
            "format jpeg has no alpha channel: it needs bg_color or a background image",
            option="format",
        )
    _check_catalogue(options)
    if options.scale is not None and options.position is None and "position" not in parsed_keys:
        # remove.bg's rule: scaling implies centring, unless a position (original) is given
        options = dataclasses.replace(options, position=(0.5, 0.5))
    if options.fast and options.model != "u2net":
        raise InvalidOption(
            f"fast is only offered for u2net; {options.model} loses too much quality in it",
            option="fast",
        )
    if options.refine and (options.fast or options.alpha_matting):
        other = "fast" if options.fast else "alpha_matting"
        raise InvalidOption(
            f"refine replaces {other}: it runs the exact u2net and refines the edge "
            "itself; choose one",
            option="refine",
        )
    return options


def _check_catalogue(options: Options) -> None:
    """Combinations of the catalogue options that cannot work (InvalidOption)."""
    sources = [
        name for name in ("bg_color", "bg_image_url", "bg_upload_key") if getattr(options, name)
    ]
    if len(sources) > 1:
        raise InvalidOption(
            f"one background at a time: {' and '.join(sources)} were both given",
            option=sources[1],
        )
    # (bg_color beside mask_only is ignored, as it always was: rembg's om + bgc)
    images = options.bg_image_url or options.bg_upload_key
    if options.mask_only and (options.format == "zip" or options.shadow or images):
        raise InvalidOption(
            "mask_only gives the mask alone: no zip, shadow or background image with it",
            option="mask_only",
        )
