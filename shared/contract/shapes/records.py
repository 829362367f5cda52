"""The job, batch, webhook-delivery and result shapes: stored records and public JSON.

Each shape is one pydantic model. From it come the Redis hash codec (which members are
JSON text, which are integers: :func:`decode`, :func:`encode`), the public JSON the API
and webhook events send (:func:`public_job`, :func:`public_batch`) and the OpenAPI
schemas (`shared.contract.shapes.openapi`). The public models forbid undeclared members, so the
published schema is complete and strict by construction. The stores return the stored
records typed (:class:`JobRecord`, :class:`BatchRecord`); readers use their attributes.

Public JSON is built in `python` mode and written by the caller with `json.dumps`, so
the bytes are the ones the API always sent: members in declaration order, JSON values of
`options` and `metadata` passed through untouched.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, Union

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

JobStatus = Literal["queued", "processing", "succeeded", "failed", "canceled"]
BatchStatus = Literal["running", "completed"]
WebhookEvent = Literal["job.succeeded", "job.failed", "job.corrected", "batch.completed"]
TERMINAL: tuple[str, ...] = ("succeeded", "failed", "canceled")
STATUSES: tuple[str, ...] = typing.get_args(JobStatus)

#: the processing options, described by `shared.contract.options.Options` (a dataclass with its
#: own parser); the OpenAPI component `Options` is generated from it
OptionsDict = Annotated[dict[str, Any], WithJsonSchema({"x-component": "Options"})]
#: the client's own JSON object, returned as it was sent
Metadata = Annotated[dict[str, Any], Field(description="the client's JSON object, as sent")]
NullableTime = Annotated[str | None, Field(json_schema_extra={"format": "date-time"})]


class Public(BaseModel):
    """A shape the API sends: undeclared members are refused (and absent from the schema)."""

    model_config = ConfigDict(extra="forbid")


class Box(Public):
    """A rectangle in pixels."""

    left: int
    top: int
    width: int
    height: int


class Subject(Box):
    """The subject's box in the original's pixels and the share of the image it covers."""

    share: float


QualityFlag = Literal[
    "no_subject", "tiny_subject", "several_pieces", "touches_frame", "uncertain_edges",
    "low_contrast", "models_disagree",
]  # fmt: skip


class Quality(Public):
    """How likely the cutout is to be wrong (docs/quality.md)."""

    score: Annotated[float, Field(ge=0, le=1)] = Field(
        description="0-1, higher is more likely right: an estimate of the cutout's IoU"
    )
    flags: list[QualityFlag] = Field(description="what looks wrong, as stable codes")
    review: bool = Field(description="score below the review threshold (CUTOUT_REVIEW_BELOW)")
    level: Literal["basic", "full"] = Field(description="the `score` option it was made with")


class JobResult(Public):
    """`result` of a succeeded job (the storage key stays internal)."""

    url: str | None
    content_type: str | None
    width: int | None
    height: int | None
    bytes: int | None
    subject: Subject | None
    foreground: Box | None
    quality: Quality | None = None
    version: int = Field(
        default=1,
        description="1 for the model's result; each corrected mask (PUT /v1/jobs/{id}/mask) "
        "makes the next; earlier versions stay at GET /v1/jobs/{id}/result?version=N",
    )
    corrected: bool = Field(default=False, description="made from a corrected mask")


class JobError(Public):
    """`error` of a failed job: a stable code and a public message."""

    code: str
    message: str


class Correction(Public):
    """`correction` of a job: its latest corrected mask (PUT /v1/jobs/{id}/mask) and
    the re-render it asked for; null until the first one."""

    status: Literal["pending", "succeeded", "failed"] = Field(
        description="pending while a worker renders it (`result` is still the previous "
        "version); succeeded once `result` is the new version; failed: `result` unchanged"
    )
    version: int = Field(description="the result version this correction makes (or made)")
    requested_at: NullableTime
    finished_at: NullableTime
    error: JobError | None = Field(description="why a failed correction failed")


class Webhook(Public):
    """A job's or batch's webhook delivery; `id` onwards appear once an event is queued."""

    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    id: str | None = Field(default=None, description="the event's webhook-id (msg_…)")
    event: WebhookEvent | None = None
    last_status: int | None = Field(default=None, description="the receiver's last answer")
    last_error: str | None = Field(default=None, description="why the last attempt failed")


class Job(Public):
    """The job object of GET /v1/jobs/{id}, batch listings and job webhook events."""

    id: Annotated[str, Field(pattern="^job_[0-9a-z]{26}$")]
    status: JobStatus
    created_at: NullableTime
    started_at: NullableTime
    finished_at: NullableTime
    options: OptionsDict
    result: JobResult | None
    error: JobError | None
    attempts: int
    batch_id: str | None
    metadata: Metadata
    webhook: Webhook | None
    correction: Correction | None = None
    #: only on a batch's jobs: the item's position in the batch request
    item_index: Annotated[int | None, WithJsonSchema({"type": "integer", "minimum": 0})] = None


class Counts(Public):
    """A batch's items by status; read in one step, so they add up to `total`."""

    total: int
    queued: int
    processing: int
    succeeded: int
    failed: int
    canceled: int
    review: int = Field(
        default=0,
        description="succeeded jobs whose quality score is below the review threshold "
        "(not a status: it is not part of `total`)",
    )


class Batch(Public):
    """The batch object of /v1/batches and of `batch.completed` events."""

    id: Annotated[str, Field(pattern="^bat_[0-9a-z]{26}$")]
    status: BatchStatus
    created_at: NullableTime
    finished_at: NullableTime
    counts: Counts
    options: OptionsDict
    metadata: Metadata
    webhook: Webhook | None


# -- stored records -----------------------------------------------------------------------


class Stored(BaseModel):
    """A record as stored in its Redis hash; :meth:`from_hash` reads one (members as
    stored, '' reads as None), :meth:`stored` gives the members to write. Members other
    than the declared ones are kept (``extra``)."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Self:
        return cls.model_validate(decode(raw))

    def stored(self, *, drop_empty: bool = False) -> dict[str, Any]:
        """The members set on this record (``drop_empty``: without the None ones)."""
        fields = self.model_dump(exclude_unset=True)
        return {k: v for k, v in fields.items() if v is not None} if drop_empty else fields


class JobRecord(Stored):
    """A job as stored in its Redis hash: the public members and the internal ones."""

    id: str
    tenant: str | None = None
    status: JobStatus
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    options: dict[str, Any] | None = None
    result: dict[str, Any] | None = None  # the public JobResult, plus the storage `key`
    error: dict[str, Any] | None = None
    attempts: int | None = None
    batch_id: str | None = None
    metadata: dict[str, Any] | None = None
    webhook: dict[str, Any] | None = None
    item_index: int | None = None
    input_key: str | None = None
    source: dict[str, Any] | None = None  # {"kind": "upload" | "url", "url"?, "filename"?}
    queue: str | None = None
    #: a custom model's file as submitted (its sha256): the worker serves exactly this one
    model_sha256: str | None = None
    #: the public Correction plus its `id`, `mask` (key of the mask as sent),
    #: `mask_key` (the stored grey mask) and `requested` (epoch seconds)
    correction: dict[str, Any] | None = None
    #: the results the corrections replaced: [{"version", "key", "content_type", "bytes"}]
    versions: list[dict[str, Any]] | None = None

    @classmethod
    def queued(cls, **members: Any) -> JobRecord:
        """A new job's record, as its first write stores it: queued, not yet run."""
        run: dict[str, Any] = {"started_at": None, "finished_at": None, "attempts": 0}
        return cls(status="queued", **run, result=None, error=None, **members)


class BatchRecord(Stored):
    """A batch as stored in its Redis hash; ``counts`` come from its second hash."""

    id: str
    tenant: str | None = None
    status: BatchStatus | None = None
    created_at: str | None = None
    finished_at: str | None = None
    options: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    webhook: dict[str, Any] | None = None
    #: the fair dispatcher's cursor: how many items, in item order, have been sent
    enqueued: int | None = None
    #: the batch's items by status, as :class:`Counts` (read from the batch's second
    #: hash, never written with the record)
    counts: dict[str, int] | None = None


def _kinds(*models: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(JSON-valued members, integer members) of the stored records, from their types."""
    json_fields: list[str] = []
    int_fields: list[str] = []
    for model in models:
        for name, info in model.model_fields.items():
            args = typing.get_args(info.annotation)
            origin = typing.get_origin(info.annotation)
            inner = (
                [a for a in args if a is not type(None)]
                if origin in (Union, types.UnionType)
                else [info.annotation]
            )
            if any(typing.get_origin(a) in (dict, list) for a in inner):
                target = json_fields
            elif inner == [int]:
                target = int_fields
            else:
                continue
            if name not in target:
                target.append(name)
    return tuple(json_fields), tuple(int_fields)


JSON_FIELDS, INT_FIELDS = _kinds(JobRecord, BatchRecord)


def encode(fields: Mapping[str, Any]) -> dict[str, str]:
    """Record members → Redis hash values (JSON text, decimal text, '' for None)."""
    out = {}
    for name, value in fields.items():
        if name in JSON_FIELDS:
            out[name] = json.dumps(value, separators=(",", ":"))
        elif value is None:
            out[name] = ""
        else:
            out[name] = str(value)
    return out


def decode(raw: Mapping[str, str]) -> dict[str, Any]:
    """A Redis hash → the record (members as stored; '' reads as None)."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in JSON_FIELDS:
            out[name] = json.loads(value) if value else None
        elif name in INT_FIELDS:
            out[name] = int(value) if value != "" else None
        else:
            out[name] = value if value != "" else None
    return out


# -- public JSON -----------------------------------------------------------------------------

_RESULT_KEYS = tuple(JobResult.model_fields)


_CORRECTION_KEYS = tuple(Correction.model_fields)


def _public_result(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # the storage key stays internal; every public member is present, null when unknown
    if not result:
        return None
    public = {name: result.get(name) for name in _RESULT_KEYS}
    # results stored before corrections existed are the model's, version 1
    public["version"] = int(result.get("version") or 1)
    public["corrected"] = bool(result.get("corrected"))
    return public


def _public_correction(correction: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not correction:
        return None
    return {name: correction.get(name) for name in _CORRECTION_KEYS}


def public_job(job: JobRecord | Mapping[str, Any]) -> dict[str, Any]:
    """The job object of docs/api.md, from a stored record (`item_index` only on a
    batch's jobs). Raises pydantic.ValidationError for a record that is not a job."""
    if not isinstance(job, JobRecord):
        job = JobRecord.model_validate(job)
    fields: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "options": job.options or {},
        "result": _public_result(job.result),
        "error": job.error,
        "attempts": job.attempts or 0,
        "batch_id": job.batch_id,
        "metadata": job.metadata or {},
        "webhook": job.webhook,
        "correction": _public_correction(job.correction),
    }
    if job.item_index is not None:
        fields["item_index"] = job.item_index
    return Job.model_validate(fields).model_dump(exclude_unset=True)


def public_batch(batch: BatchRecord | Mapping[str, Any]) -> dict[str, Any]:
    """The batch object of docs/api.md, from a stored record with its `counts`."""
    if not isinstance(batch, BatchRecord):
        batch = BatchRecord.model_validate(batch)
    fields = {
        "id": batch.id,
        "status": batch.status or "running",
        "created_at": batch.created_at,
        "finished_at": batch.finished_at,
        "counts": batch.counts or {},
        "options": batch.options or {},
        "metadata": batch.metadata or {},
        "webhook": batch.webhook,
    }
    return Batch.model_validate(fields).model_dump(exclude_unset=True)


class JobPage(Public):
    """A page of a batch's jobs, in item order (or worst score first with `order=score`);
    go on while `next_cursor` is not null."""

    items: list[Job]
    next_cursor: str | None


class JobEvent(Public):
    """The body of a `job.succeeded`, `job.failed` or `job.corrected` webhook delivery
    (`job.corrected`: a corrected mask's re-render finished, `data.result` is the new
    version)."""

    type: Literal["job.succeeded", "job.failed", "job.corrected"]
    timestamp: Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    data: Job


class BatchEvent(Public):
    """The body of a `batch.completed` webhook delivery."""

    type: Literal["batch.completed"]
    timestamp: Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    data: Batch
