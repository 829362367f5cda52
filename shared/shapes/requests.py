"""Request bodies of the JSON endpoints: `POST /v1/jobs` and `POST /v1/batches`.

The models name the accepted members (an unknown one is refused with the list of these),
their types and the one-of rule on an item's input; the OpenAPI request schemas are
generated from them. :func:`check_members` applies the member rules with the API's own
errors and messages; the values are then judged by the endpoint's parsers (options by
`shared.options`, URLs by the SSRF guard, metadata by its size and depth limits), so
every refusal keeps its stable code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import InvalidRequest
from shared.shapes.records import Metadata, OptionsDict

Sizes = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1, max_length=100)]
Url = Annotated[str, Field(json_schema_extra={"format": "uri"})]


class Body(BaseModel):
    """A JSON request body: undeclared members are refused."""

    model_config = ConfigDict(extra="forbid")
    #: members of which exactly one must be present (the input), if any
    one_of: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def members(cls) -> set[str]:
        return set(cls.model_fields)


def _one_of(*names: str) -> dict[str, Any]:
    return {"oneOf": [{"required": [name]} for name in names]}


class JobCreate(Body):
    """`POST /v1/jobs` as JSON: an input (`upload_key` or `image_url`) and options."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of("upload_key", "image_url"))
    one_of: ClassVar[tuple[str, ...]] = ("upload_key", "image_url")

    upload_key: str | None = Field(default=None, description="from POST /v1/uploads")
    image_url: Url | None = Field(default=None, description="fetched by the worker")
    options: OptionsDict | None = None
    webhook_url: Url | None = Field(default=None, description="receives job.succeeded/failed")
    metadata: Metadata | None = None


class BatchItem(Body):
    """One item of `POST /v1/batches`; its options override the batch's."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of("image_url", "upload_key"))
    one_of: ClassVar[tuple[str, ...]] = ("upload_key", "image_url")

    image_url: Url | None = None
    upload_key: str | None = None
    options: OptionsDict | None = None
    metadata: Metadata | None = None


class BatchCreate(Body):
    """`POST /v1/batches` as JSON."""

    items: Annotated[list[BatchItem], Field(min_length=1)]
    options: OptionsDict | None = None
    webhook_url: Url | None = Field(default=None, description="receives batch.completed")
    metadata: Metadata | None = None


class UploadRequest(Body):
    """`POST /v1/uploads`: the exact size of each slot, signed into its URL."""

    count: Annotated[int, Field(ge=1, le=100)] = 1
    content_type: str = "application/octet-stream"
    bytes: Annotated[int, Field(ge=1)] | None = None
    sizes: Sizes | None = None


class Upload(BaseModel):
    """One upload slot: PUT the file's bytes to `url` with `headers`."""

    model_config = ConfigDict(extra="forbid")

    upload_key: str
    url: Url
    method: Annotated[str, Field(json_schema_extra={"const": "PUT"})]
    headers: dict[str, str]
    expires_at: Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def check_members(model: type[Body], body: Mapping[str, Any]) -> None:
    """Refuse members `model` does not declare, and a body without exactly one of its
    `one_of` members (InvalidRequest, the messages the API always gave)."""
    expected = model.members()
    unknown = sorted(set(body) - expected)
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(expected))}"
        )
    if model.one_of and sum(name in body for name in model.one_of) != 1:
        names = sorted(model.one_of, reverse=True)
        raise InvalidRequest(f"send exactly one of `{names[0]}` and `{names[1]}`")
