"""The body of ``POST /v1.0/removebg`` as a model: remove.bg's parameters, typed.

The same model reads the request as JSON, multipart/form-data (``image_file`` and
``bg_image_file`` are the files' bytes) and application/x-www-form-urlencoded; the
OpenAPI request schemas are generated from it (:func:`removebg_schemas`). It is read with
``RemoveBgRequest.model_validate(params, context={"models": ..., "bg_upload_key": ...})``
(``models``: the caller's custom model names; ``bg_upload_key``: where an uploaded
``bg_image_file`` will be stored). remove.bg's clients read its refusals, so the model
raises the API's own errors in the order the endpoint always judged them: exactly one
image, ``bg_image_file`` a file, then the parameters (api/removebg_params.py) and our
options made of them. What needs the settings (the images' own checks, base64 against
the upload limit) is judged by the endpoint on the model it gets back.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, SkipJsonSchema

from api.removebg_params import (
    SOURCES,
    RemoveBgType,
    RemoveBgTypeLevel,
    is_given,
    removebg_options,
)
from shared.contract.options import Options, options_schema
from shared.contract.optionvalues import Box, Colour, Margin, Position, parse_bool
from shared.errors import InvalidRequest

File = Annotated[bytes, WithJsonSchema({"type": "string", "contentEncoding": "binary"})]
Url = Annotated[str, Field(json_schema_extra={"format": "uri"})]
Source = Literal["image_file", "image_file_b64", "image_url"]
_OPTIONS = options_schema()["properties"]


def _as_option(name: str, **extra: Any) -> WithJsonSchema:
    """The JSON Schema of our option ``name`` (what remove.bg's parameter of the same
    meaning takes), with ``extra`` (a description) merged in."""
    schema = {k: v for k, v in _OPTIONS[name].items() if k != "default"}
    return WithJsonSchema(schema | extra)


class RemoveBgRequest(BaseModel):
    """remove.bg's parameters (docs/removebg.md), with two of ours: ``model`` and
    ``score``. Exactly one of ``image_file``, ``image_file_b64`` and ``image_url``."""

    # unknown parameters are refused by name; an unset one (null, "", "undefined") is
    # not given, as remove.bg's clients send every key
    model_config = ConfigDict(frozen=True, extra="ignore")

    image_file: File | None = Field(default=None, description="the photo (multipart only)")
    image_file_b64: str | None = Field(
        default=None, description="the photo in base64 (standard or URL-safe, data: URL too)"
    )
    image_url: Url | None = Field(default=None, description="the photo's address")
    size: Literal["preview", "small", "regular", "medium", "hd", "full", "4k", "auto", "50mp"] = (
        Field(default="preview", description="caps the megapixels of the result")
    )
    type: RemoveBgType = Field(default="auto", description="accepted; answered in X-Type")
    type_level: RemoveBgTypeLevel = "1"
    format: Literal["auto", "png", "jpg", "jpeg", "webp", "zip"] = Field(
        default="auto", description="auto: JPG where the result is opaque, else PNG"
    )
    roi: Annotated[Box | None, _as_option("roi")] = None
    crop: bool = False
    crop_margin: Annotated[Margin | None, _as_option("crop_margin")] = None
    scale: Annotated[float | None, _as_option("scale")] = None
    position: Annotated[Position | None, _as_option("position")] = None
    channels: Literal["rgba", "alpha"] = Field(default="rgba", description="alpha: the mask")
    add_shadow: bool = False
    semitransparency: bool | None = Field(default=None, description="accepted")
    bg_color: Annotated[
        Colour | None,
        WithJsonSchema(
            {
                "type": "string",
                "description": "hex (with or without #; 3, 4, 6 or 8 digits), a colour "
                "name, or r,g,b[,a]",
            }
        ),
    ] = None
    bg_image_url: Url | None = None
    bg_image_file: File | None = Field(
        default=None, description="the background image (multipart only)"
    )
    model: Annotated[str, _as_option("model")] = "u2net"
    score: Literal["basic", "full"] = Field(
        default="basic", description="ours: the quality score's level (Cutout-Score* headers)"
    )
    #: which of the three images was given, and our options made of the parameters
    source: SkipJsonSchema[Source] = Field(default="image_file", exclude=True)
    options: SkipJsonSchema[Options] = Field(default_factory=Options, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _judge(cls, params: Any, info: ValidationInfo) -> Any:
        if isinstance(params, BaseModel):
            return params
        if not isinstance(params, dict):
            raise InvalidRequest("the body must be a JSON object of remove.bg's parameters")
        context = info.context or {}
        source = _source(params)
        background = params.get("bg_image_file")
        key = context.get("bg_upload_key") if isinstance(background, bytes) else None
        options = removebg_options(params, key, models=context.get("models"))
        return _typed(params, source, options)


def _source(params: dict[str, Any]) -> Source:
    """The one image given; a ``bg_image_file`` that is not a file is refused too."""
    sources = [name for name in SOURCES if is_given(params.get(name))]
    if len(sources) != 1:
        raise InvalidRequest(
            "send exactly one of image_file, image_file_b64 and image_url"
            + (f" (got {', '.join(sources)})" if sources else ""),
            field="image_file",
        )
    background = params.get("bg_image_file")
    if is_given(background) and not isinstance(background, bytes):
        raise InvalidRequest(
            "bg_image_file must be a file of a multipart body (or send bg_image_url)",
            field="bg_image_file",
        )
    source: Source = sources[0]  # type: ignore[assignment]
    return source


def _typed(params: dict[str, Any], source: Source, options: Options) -> dict[str, Any]:
    """The model's members: remove.bg's own (as removebg_options judged them), the
    images, and what became our options."""
    given = {k: v for k, v in params.items() if is_given(v)}

    def word(name: str, default: str) -> str:
        return str(given.get(name, default)).strip().lower()

    image = given.get(source)
    return {
        "source": source,
        "options": options,
        "image_file": image if isinstance(image, bytes) else None,
        "image_file_b64": str(image) if source == "image_file_b64" else None,
        "image_url": str(image) if source == "image_url" else None,
        "bg_image_file": given.get("bg_image_file"),
        "size": word("size", "preview"),
        "type": word("type", "auto"),
        "type_level": word("type_level", "1"),
        "format": word("format", "auto"),
        "channels": word("channels", "rgba"),
        "semitransparency": (
            parse_bool("semitransparency", given["semitransparency"])
            if "semitransparency" in given
            else None
        ),
        "crop": options.crop,
        "add_shadow": options.shadow,
        **{name: getattr(options, name) for name in _SAME},
    }


#: members that are our option of the same name
_SAME = ("roi", "crop_margin", "scale", "position", "bg_color", "bg_image_url", "model", "score")


def read_removebg(params: Any, **context: Any) -> RemoveBgRequest:
    """``params`` as the model; a value the judges let through that the model still
    refuses reads as ``invalid_request`` naming the parameter."""
    try:
        return RemoveBgRequest.model_validate(params, context=context)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InvalidRequest(f"{where}: {error['msg']}", field=where) from None


# -- the OpenAPI request schemas -----------------------------------------------------------

#: parameters that only a multipart body can carry
FILES = ("image_file", "bg_image_file")


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def removebg_schemas() -> dict[str, Any]:
    """``components.schemas`` of the three bodies: RemoveBgMultipart (the files too),
    RemoveBgJson and RemoveBgForm (their text parameters)."""
    multipart = RemoveBgRequest.model_json_schema(mode="validation", schema_generator=_Schema)
    multipart.pop("title", None)
    properties = multipart["properties"]
    text = {
        **multipart,
        "properties": {name: value for name, value in properties.items() if name not in FILES},
    }
    one_of = {"oneOf": [{"required": [name]} for name in SOURCES]}
    return {
        "RemoveBgMultipart": multipart | one_of,
        "RemoveBgJson": text | {"oneOf": one_of["oneOf"][1:]},
        "RemoveBgForm": text | {"oneOf": one_of["oneOf"][1:]},
    }
