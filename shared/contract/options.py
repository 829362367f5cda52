"""Processing options: one frozen model shared by the API (forms, JSON), the CLI and the
worker.

Names follow docs/api.md's options table. Values arrive as strings (forms, query strings,
command-line flags) or as JSON values; both parse to the same :class:`Options`, whose
values are typed (:mod:`shared.contract.optionvalues`). Every problem raises
:class:`~shared.errors.InvalidOption` naming the option: an unknown name or a wrong
value first (when several are, the first in the order the client gave them), then a
combination that cannot work.

Which custom model names are allowed is the caller's to say, as validation context:
``parse_options(values, models=check)`` (``check(name)`` is true for a model registered
for the caller); without one only :data:`MODELS` are.

The stored form (a job record's ``options``, the job object's): :meth:`Options.stored`,
every option with its value in canonical JSON (the typed values as their text, keys
sorted), which :meth:`Options.from_stored` parses back to the same model. Every option
is kept, defaults too: the job object shows them all, and ``position`` must be there to
say that a scaled subject was left where it was (``null``) rather than centred.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema

from shared.contract import optionvalues as values_
from shared.contract.optionvalues import Box, Colour, Margin, Position, Size
from shared.errors import InvalidOption
from shared.onnx.modelfile import NAME_RE

MODELS = ("u2net", "u2netp")
FORMATS = {
    "png": "image/png",
    "webp": "image/webp",
    "jpeg": "image/jpeg",
    "zip": "application/zip",  # color.jpg + alpha.png, as remove.bg's ZIP format
}
EXTENSIONS = {"png": "png", "webp": "webp", "jpeg": "jpg", "zip": "zip"}
MAX_CANVAS_SIDE = values_.MAX_CANVAS_SIDE
MAX_MARGIN = 10_000
#: the levels of the ``score`` option (docs/quality.md)
SCORES = ("basic", "full")

ModelCheck = Callable[[str], bool]


def _name(info: ValidationInfo) -> str:
    return info.field_name or "option"


def _model(value: Any, info: ValidationInfo) -> str:
    model = str(value).strip()
    check: ModelCheck | None = (info.context or {}).get("models")
    # a registered name is short and plain (shared/onnx/modelfile.py): anything else is
    # refused here, before it reaches a store lookup
    plain = NAME_RE.fullmatch(model) is not None
    if model not in MODELS and not (check is not None and plain and check(model)):
        raise InvalidOption(
            f"model must be one of {', '.join(MODELS)} or a model registered for you, "
            f"got {value!r}",
            option="model",
        )
    return model


def _format(value: Any) -> str:
    fmt = str(value).strip().lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise InvalidOption(
            f"format must be one of {', '.join(FORMATS)}, got {value!r}", option="format"
        )
    return fmt


def _score(value: Any) -> str:
    level = str(value).strip().lower()
    if level not in SCORES:
        raise InvalidOption(
            f"score must be one of {', '.join(SCORES)}, got {value!r}", option="score"
        )
    return level


def _fill(value: Any) -> float:
    try:
        fill = float(value)
    except (TypeError, ValueError):
        raise InvalidOption(f"fill must be a number, got {value!r}", option="fill") from None
    if not 0.0 < fill <= 1.0:
        raise InvalidOption(f"fill must be in (0, 1], got {fill}", option="fill")
    return fill


def _typed(parse: Callable[[str, Any], Any], schema: dict[str, Any]) -> tuple[Any, ...]:
    """Annotations of a typed option: its parser (named after the field), its text as
    the stored form, its JSON Schema (what a client may send; the stored text included)."""
    return (
        PlainValidator(lambda value, info: parse(_name(info), value)),
        PlainSerializer(lambda value: value.text(), when_used="json-unless-none"),
        WithJsonSchema({"anyOf": [*schema["anyOf"], {"type": "null"}]}),
    )


def _scalar(parse: Callable[[str, Any], Any]) -> BeforeValidator:
    return BeforeValidator(lambda value, info: parse(_name(info), value))


_LENGTH = r"\d+(\.\d+)?([pP][xX]|%)?"
Flag = Annotated[bool, _scalar(values_.parse_bool)]
Level = Annotated[int, _scalar(lambda name, value: values_.parse_int(name, value, 0, 255))]
ColourOption = Annotated[
    Colour | None,
    *_typed(
        Colour.parse,
        {
            "anyOf": [
                {"type": "string", "description": "#RRGGBB, #RRGGBBAA or r,g,b[,a]"},
                {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0, "maximum": 255},
                    "minItems": 3,
                    "maxItems": 4,
                },
            ]
        },
    ),
]
SizeOption = Annotated[
    Size | None,
    *_typed(
        Size.parse,
        {"anyOf": [{"type": "string", "pattern": r"^\s*\d+\s*[xX]\s*\d+\s*$"}]},
    ),
]
PositionOption = Annotated[
    Position | None,
    *_typed(
        Position.parse,
        {
            "anyOf": [
                {"type": "string", "description": "original, center, X% or X% Y%"},
                {
                    "type": "array",
                    "items": {"type": ["number", "string"]},
                    "minItems": 2,
                    "maxItems": 2,
                },
            ]
        },
    ),
]
MarginOption = Annotated[
    Margin | None,
    *_typed(
        Margin.parse,
        {
            "anyOf": [
                {"type": "string", "description": "1, 2 or 4 lengths (30px, 10%)"},
                {"type": "number", "minimum": 0},
            ]
        },
    ),
]
BoxOption = Annotated[
    Box | None,
    *_typed(
        Box.parse,
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": rf"^\s*{_LENGTH}([\s,]+{_LENGTH}){{3}}\s*$",
                    "description": "x1 y1 x2 y2, each in px (or a bare number) or %",
                }
            ]
        },
    ),
]
ScaleOption = Annotated[
    float | None,
    _scalar(values_.parse_scale),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": values_.MIN_SCALE, "maximum": 1},
                {"type": "string", "description": "10% to 100%, or original"},
                {"type": "null"},
            ]
        }
    ),
]


class Options(BaseModel):
    """Validated processing options with docs/api.md's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Annotated[str, BeforeValidator(_model)] = Field(
        default="u2net",
        examples=list(MODELS),
        description=f"{', '.join(MODELS)}, or a custom model of GET /v1/models",
    )
    format: Annotated[Literal["png", "webp", "jpeg", "zip"], BeforeValidator(_format)] = "png"
    mask_only: Flag = False
    bg_color: ColourOption = None
    post_process: Flag = False
    alpha_matting: Flag = False
    alpha_matting_foreground_threshold: Level = Field(default=240, ge=0, le=255)
    alpha_matting_background_threshold: Level = Field(default=10, ge=0, le=255)
    alpha_matting_erode_size: Level = Field(default=10, ge=0, le=255)
    crop: Flag = False
    margin: Annotated[
        int, _scalar(lambda name, value: values_.parse_int(name, value, 0, MAX_MARGIN))
    ] = Field(default=0, ge=0, le=MAX_MARGIN)
    canvas: SizeOption = None
    fill: Annotated[float, BeforeValidator(_fill)] = Field(default=0.85, gt=0, le=1)
    fast: Flag = False
    #: the refined cutout (worker/engine/refine.py, docs/refine.md); not rembg-identical
    refine: Flag = False
    # catalogue outputs (issue 16; their values in shared/contract/optionvalues.py)
    bg_image_url: Annotated[str | None, _scalar(values_.parse_bg_image_url)] = Field(
        default=None, json_schema_extra={"format": "uri"}
    )
    bg_upload_key: Annotated[str | None, _scalar(values_.parse_upload_key)] = Field(
        default=None, max_length=values_.MAX_KEY_LENGTH
    )
    shadow: Flag = False
    scale: ScaleOption = None
    position: PositionOption = None
    crop_margin: MarginOption = None
    roi: BoxOption = None
    max_megapixels: Annotated[float | None, _scalar(values_.parse_megapixels)] = Field(
        default=None, ge=values_.MIN_MEGAPIXELS, le=values_.MAX_MEGAPIXELS
    )
    #: how the cutout's quality is estimated (worker/engine/quality.py, docs/quality.md):
    #: ``basic`` from the model's own map, ``full`` with a second model's opinion
    score: Annotated[Literal["basic", "full"], BeforeValidator(_score)] = "basic"

    @property
    def has_background(self) -> bool:
        return self.bg_color is not None or bool(self.bg_image_url or self.bg_upload_key)

    @property
    def content_type(self) -> str:
        return FORMATS[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    def stored(self) -> dict[str, Any]:
        """The stored form: every option, JSON values, keys sorted (see the module)."""
        return dict(sorted(self.model_dump(mode="json").items()))

    @classmethod
    def from_stored(cls, record: Mapping[str, Any]) -> Options:
        """A record's ``options`` (this form, or an older one: jobs queued before a
        deploy) as the model. Its model name was checked for its owner at submit; any
        plain name is taken here, and the engine resolves it again."""
        return cls.model_validate(record, context={"models": _plain_name})

    @model_validator(mode="wrap")
    @classmethod
    def _whole(cls, data: Any, handler: ModelWrapValidatorHandler[Options]) -> Options:
        if isinstance(data, cls):
            return data  # validated when made (and frozen): its rules have run once
        known = not isinstance(data, Mapping) or all(key in cls.model_fields for key in data)
        try:
            options = handler(data) if known else None
        except InvalidOption:
            options = None
        if options is None:
            # pydantic judges the fields in the model's order; a client is told of the
            # first unknown name or wrong value in its own order, as it always was
            for key, value in data.items():
                if key not in cls.model_fields:
                    raise InvalidOption(f"unknown option {key!r}", option=str(key))
                handler({key: value})
            options = handler(data)
        _check_combinations(options)
        given = data if isinstance(data, Mapping) else {}
        if options.scale is not None and options.position is None and "position" not in given:
            # remove.bg's rule: scaling implies centring, unless a position (original) is given
            options = options.model_copy(update={"position": Position(0.5, 0.5)})
        return options


OPTION_NAMES = tuple(Options.model_fields)


def _plain_name(name: str) -> bool:
    return NAME_RE.fullmatch(name) is not None


def parse_options(
    values: Mapping[str, Any] | None,
    *,
    base: Options | None = None,
    models: ModelCheck | None = None,
) -> Options:
    """Parse and validate options; ``base`` supplies defaults (batch-level options),
    ``models`` says which custom model names the caller may use.

    Raises InvalidOption for an unknown name, a bad value, or a combination that cannot
    work (``format=jpeg`` without ``bg_color``).
    """
    data = dict(values or {})
    if base is not None:
        # the typed values themselves, which their parsers take back as they are: a
        # model_dump would hand roi and crop_margin over as plain tuples, which they refuse
        inherited = {
            name: getattr(base, name)
            for name, field in Options.model_fields.items()
            if getattr(base, name) != field.default
        }
        if base.scale is not None:
            # a base that already had a scale already decided its position
            inherited["position"] = base.position
        # the item's own values first, in its order (the first wrong one is named)
        data = data | {name: value for name, value in inherited.items() if name not in data}
    return Options.model_validate(data, context={"models": models})


def _check_combinations(options: Options) -> None:
    """Combinations of options that cannot work (InvalidOption)."""
    if options.format == "jpeg" and not options.has_background and not options.mask_only:
        raise InvalidOption(
            "format jpeg has no alpha channel: it needs bg_color or a background image",
            option="format",
        )
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


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def options_schema() -> dict[str, Any]:
    """JSON Schema of the options (what a client may send; the stored form included)."""
    schema = Options.model_json_schema(schema_generator=_Schema)
    schema.pop("title", None)
    schema.pop("description", None)
    return schema
