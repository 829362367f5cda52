"""Request bodies of the JSON endpoints: `POST /v1/jobs` and `POST /v1/batches`.

Each body is read with ``Model.model_validate(body, context=...)``; the OpenAPI request
schemas are generated from the same models. The API's refusals are contract, so the
models raise its own errors (``shared.errors``, which pydantic lets through untouched)
with the messages it always gave, in the order it always judged them: the body is an
object, its members are known (:func:`check_members`), exactly one input is given, then
each member's kind (:attr:`Body.guards`). What needs the settings or the stores (option
values, URLs under the SSRF policy, an upload key's object) is judged by the endpoint on
the typed model it gets back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from shared.contract import imagecheck
from shared.contract.shapes.jsontext import parse_metadata
from shared.contract.shapes.records import Metadata, OptionsDict
from shared.errors import CutoutError, InvalidRequest, NotFound, PayloadTooLarge, UploadNotFound

Sizes = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1, max_length=100)]
Url = Annotated[str, Field(json_schema_extra={"format": "uri"})]
#: a member's value and the validation context → the value to validate, or the API's error
Guard = Callable[[Any, Mapping[str, Any]], Any]


# -- the kinds of members, with the API's refusals ------------------------------------------


def url_string(name: str) -> Guard:
    """A URL member must be a non-blank string (its address is judged by the endpoint)."""

    def guard(value: Any, context: Mapping[str, Any]) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise InvalidRequest(f"{name} must be a URL string", field=name)
        return value

    return guard


def webhook_url(value: Any, context: Mapping[str, Any]) -> Any:
    """``webhook_url``: null or "" is none."""
    return None if value is None or value == "" else url_string("webhook_url")(value, context)


def options_object(field: str | None = "options", *, falsy_is_none: bool = False) -> Guard:
    """``options`` must be a JSON object (``falsy_is_none``: a job's ``[]``, ``0``, ``""``
    always read as no options)."""
    extra = {"field": field} if field else {}

    def guard(value: Any, context: Mapping[str, Any]) -> Any:
        if value is None or (falsy_is_none and not value):
            return None
        if not isinstance(value, dict):
            raise InvalidRequest("`options` must be a JSON object", **extra)
        return value

    return guard


def metadata(value: Any, context: Mapping[str, Any]) -> Any:
    """``metadata``: a JSON object (or its JSON text) within its size and depth limits."""
    return parse_metadata(value)


def job_upload_key(value: Any, context: Mapping[str, Any]) -> Any:
    # not a string reads like a key of no upload (the endpoint checks the tenant's)
    if not isinstance(value, str):
        raise NotFound("no such upload_key", field="upload_key")
    return value


def item_upload_key(value: Any, context: Mapping[str, Any]) -> Any:
    if not isinstance(value, str):
        raise UploadNotFound("no upload of yours under this upload_key", field="upload_key")
    return value


def check_count(count: int, max_items: int | None) -> None:
    """A batch has 1 to ``max_items`` (CUTOUT_MAX_BATCH_ITEMS) items."""
    if count == 0:
        raise InvalidRequest("a batch needs at least one item", field="items")
    if max_items is not None and count > max_items:
        raise PayloadTooLarge(
            f"the batch has {count} items, over the limit of {max_items}; split it",
            field="items",
        )


def for_item(error: CutoutError, index: int) -> CutoutError:
    """The same error (class, status, extras) naming the batch item it is about."""
    named = type(error)(f"items[{index}]: {error.message}", **{**error.extra, "item": index})
    named.code, named.status, named.title = error.code, error.status, error.title
    return named


@contextlib.contextmanager
def item_errors(index: int) -> Iterator[None]:
    try:
        yield
    except CutoutError as exc:
        raise for_item(exc, index) from None


def items_list(value: Any, context: Mapping[str, Any]) -> Any:
    """``items``: a list of 1 to ``context["max_items"]`` members (judged one by one later)."""
    if not isinstance(value, list):
        raise InvalidRequest("`items` must be a list of objects", field="items")
    check_count(len(value), context.get("max_items"))
    return value


def items_each(value: list[Any], context: Mapping[str, Any]) -> list[BatchItem]:
    """Each item as a :class:`BatchItem`; an item's refusal names its index."""
    items = []
    for index, raw in enumerate(value):
        with item_errors(index):
            items.append(BatchItem.model_validate(raw, context=dict(context)))
    return items


B = TypeVar("B", bound="Body")


# -- the bodies -----------------------------------------------------------------------------


class Body(BaseModel):
    """A JSON request body: undeclared members are refused."""

    model_config = ConfigDict(extra="forbid")
    #: members of which exactly one must be present (the input), if any
    one_of: ClassVar[tuple[str, ...]] = ()
    #: (member, guard) in the order the API judges them; a guard runs on a member that is
    #: present (or required), refuses a value of the wrong kind with the API's own error
    #: and returns the value the model then validates
    guards: ClassVar[tuple[tuple[str, Guard], ...]] = ()

    @classmethod
    def members(cls) -> set[str]:
        return set(cls.model_fields)

    @classmethod
    def not_an_object(cls) -> CutoutError:
        return InvalidRequest("the JSON body must be an object")

    @model_validator(mode="before")
    @classmethod
    def _judge(cls, body: Any, info: ValidationInfo) -> Any:
        if isinstance(body, BaseModel):
            return body
        if not isinstance(body, dict):
            raise cls.not_an_object()
        check_members(cls, body)
        return cls.judge_members(dict(body), info.context or {})

    @classmethod
    def judge_members(cls, body: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """The members after :attr:`guards` (a body whose rules span members overrides)."""
        for name, guard in cls.guards:
            if name in body or cls.model_fields[name].is_required():
                body[name] = guard(body.get(name), context)
        return body


def _one_of(*names: str) -> dict[str, Any]:
    return {"oneOf": [{"required": [name]} for name in names]}


class JobCreate(Body):
    """`POST /v1/jobs` as JSON: an input (`upload_key` or `image_url`) and options."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of("upload_key", "image_url"))
    one_of: ClassVar[tuple[str, ...]] = ("upload_key", "image_url")
    guards: ClassVar[tuple[tuple[str, Guard], ...]] = (
        ("options", options_object(None, falsy_is_none=True)),
        ("metadata", metadata),
        ("webhook_url", webhook_url),
        ("upload_key", job_upload_key),
        ("image_url", url_string("image_url")),
    )

    upload_key: str | None = Field(default=None, description="from POST /v1/uploads")
    image_url: Url | None = Field(default=None, description="fetched by the worker")
    options: OptionsDict | None = None
    webhook_url: Url | None = Field(default=None, description="receives job.succeeded/failed")
    metadata: Metadata | None = None


class BatchItem(Body):
    """One item of `POST /v1/batches`; its options override the batch's."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of("image_url", "upload_key"))
    one_of: ClassVar[tuple[str, ...]] = ("upload_key", "image_url")
    guards: ClassVar[tuple[tuple[str, Guard], ...]] = (
        ("options", options_object()),
        ("metadata", metadata),
        ("image_url", url_string("image_url")),
        ("upload_key", item_upload_key),
    )

    image_url: Url | None = None
    upload_key: str | None = None
    options: OptionsDict | None = None
    metadata: Metadata | None = None

    @classmethod
    def not_an_object(cls) -> CutoutError:
        return InvalidRequest("an item must be a JSON object", field="items")


class BatchCreate(Body):
    """`POST /v1/batches` as JSON."""

    # read with the context max_items=CUTOUT_MAX_BATCH_ITEMS (see items_list)

    guards: ClassVar[tuple[tuple[str, Guard], ...]] = (
        ("items", items_list),
        ("options", options_object()),
        ("metadata", metadata),
        ("webhook_url", webhook_url),
        ("items", items_each),
    )

    items: Annotated[list[BatchItem], Field(min_length=1)]
    options: OptionsDict | None = None
    webhook_url: Url | None = Field(default=None, description="receives batch.completed")
    metadata: Metadata | None = None


class UploadRequest(Body):
    """`POST /v1/uploads`: the exact size of each slot, signed into its URL."""

    # read with the context max_bytes=CUTOUT_MAX_UPLOAD_BYTES; once read, `sizes` holds
    # every slot's size (from `sizes`, or `bytes` × `count`) and `content_type` is lower case

    count: Annotated[int, Field(ge=1, le=100)] = 1
    content_type: str = "application/octet-stream"
    bytes: Annotated[int, Field(ge=1)] | None = None
    sizes: Sizes | None = None

    @classmethod
    def judge_members(cls, body: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        sizes = upload_sizes(body, context.get("max_bytes"))
        content_type = body.get("content_type") or UPLOAD_TYPES[0]
        if not isinstance(content_type, str) or content_type.lower() not in UPLOAD_TYPES:
            raise InvalidRequest(
                f"`content_type` must be one of {', '.join(sorted(UPLOAD_TYPES))}",
                field="content_type",
            )
        return {**body, "count": len(sizes), "sizes": sizes, "content_type": content_type.lower()}


#: what an upload slot may declare: the types of the formats we read (shared/contract/imagecheck.py)
UPLOAD_TYPES = ("application/octet-stream", *imagecheck.CONTENT_TYPES.values())
MAX_SLOTS = 100


def upload_sizes(body: Mapping[str, Any], limit: int | None) -> list[int]:
    """One declared length per slot, from ``sizes``, or ``bytes`` × ``count``."""
    if "sizes" in body:
        raw = body["sizes"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SLOTS:
            raise InvalidRequest(
                f"`sizes` must be a list of 1 to {MAX_SLOTS} byte counts", field="sizes"
            )
        if "bytes" in body:
            raise InvalidRequest("send `bytes` or `sizes`, not both", field="sizes")
        if "count" in body and body["count"] != len(raw):
            raise InvalidRequest("`count` must equal the length of `sizes`", field="count")
        return [_slot_size(value, "sizes", limit) for value in raw]
    count = body.get("count", 1)
    count = 0 if count is None else count  # null is out of range, not of the wrong kind
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidRequest("`count` must be an integer", field="count")
    if not 1 <= count <= MAX_SLOTS:
        raise InvalidRequest(f"`count` must be between 1 and {MAX_SLOTS}", field="count")
    if body.get("bytes") is None:
        raise InvalidRequest(
            "`bytes` (the exact size of each file) or `sizes` (one per file) is "
            "required: the size is signed into the upload URL",
            field="bytes",
        )
    return [_slot_size(body["bytes"], "bytes", limit)] * count


def _slot_size(value: Any, name: str, limit: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"`{name}` must hold integers", field=name)
    if value < 1:
        raise InvalidRequest(f"`{name}` must be positive", field=name)
    if limit is not None and value > limit:
        raise PayloadTooLarge(f"`{name}`: {value} bytes is over the upload limit of {limit}")
    return value


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


def read_body(model: type[B], body: Any, **context: Any) -> B:
    """``body`` validated into ``model``; the API's own error when it does not fit (the
    guards answer every kind of value a client can send; a value they let through that
    the model still refuses reads as ``invalid_request`` naming the member)."""
    try:
        return model.model_validate(body, context=context)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InvalidRequest(f"`{where}`: {error['msg']}") from None
