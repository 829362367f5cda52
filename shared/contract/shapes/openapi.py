"""OpenAPI component schemas generated from the shape models and the multipart forms
(JSON Schema 2020-12)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from shared.contract.shapes.forms import FORMS
from shared.contract.shapes.records import (
    Batch,
    BatchEvent,
    Box,
    Correction,
    Counts,
    Job,
    JobError,
    JobEvent,
    JobPage,
    JobResult,
    Subject,
    Webhook,
)
from shared.contract.shapes.requests import BatchCreate, BatchItem, JobCreate, Upload, UploadRequest

REF_TEMPLATE = "#/components/schemas/{model}"

#: component name → (model, which side of it: what the API sends or what it accepts)
COMPONENTS: dict[str, tuple[type[BaseModel], JsonSchemaMode]] = {
    "Job": (Job, "serialization"),
    "JobResult": (JobResult, "serialization"),
    "JobError": (JobError, "serialization"),
    "Correction": (Correction, "serialization"),
    "Webhook": (Webhook, "serialization"),
    "Box": (Box, "serialization"),
    "Subject": (Subject, "serialization"),
    "Batch": (Batch, "serialization"),
    "BatchCounts": (Counts, "serialization"),
    "JobPage": (JobPage, "serialization"),
    "Upload": (Upload, "serialization"),
    "JobEvent": (JobEvent, "serialization"),
    "BatchEvent": (BatchEvent, "serialization"),
    "JobJson": (JobCreate, "validation"),
    "BatchJson": (BatchCreate, "validation"),
    "BatchItem": (BatchItem, "validation"),
    "UploadRequest": (UploadRequest, "validation"),
}


class _Schema(GenerateJsonSchema):
    """Model names as the component names above; no generated titles on members."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def normalize_name(self, name: str) -> str:
        return _NAMES.get(name, name)


_NAMES = {model.__name__: name for name, (model, _) in COMPONENTS.items()}


def component_schemas() -> dict[str, Any]:
    """``components.schemas`` for every shape model, references between them included."""
    _, top = models_json_schema(
        [(model, mode) for model, mode in COMPONENTS.values()],
        ref_template=REF_TEMPLATE,
        schema_generator=_Schema,
    )
    schemas: dict[str, Any] = _external_refs(top.get("$defs", {}))
    for schema in schemas.values():
        schema.pop("title", None)
    return (
        {name: schemas[name] for name in COMPONENTS if name in schemas}
        | {name: schema for name, schema in schemas.items() if name not in COMPONENTS}
        | form_schemas()
    )


def form_schemas() -> dict[str, Any]:
    """The multipart request bodies (``shared.contract.shapes.forms``)."""
    out = {}
    for name, form in FORMS.items():
        schema = TypeAdapter(form).json_schema(schema_generator=_Schema)
        schema.pop("title", None)
        out[name] = schema
    return out


def _external_refs(value: Any) -> Any:
    """``{"x-component": NAME}`` (a component defined outside the models, such as
    ``Options``) → a reference to it; pydantic cannot resolve one while generating."""
    if isinstance(value, dict):
        if set(value) == {"x-component"}:
            return {"$ref": REF_TEMPLATE.format(model=value["x-component"])}
        return {key: _external_refs(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_external_refs(item) for item in value]
    return value


def webhooks() -> dict[str, Any]:
    """OpenAPI 3.1 `webhooks`: the events Cutout POSTs to a `webhook_url`."""
    out: dict[str, Any] = {}
    for event, schema in (
        ("job.succeeded", "JobEvent"),
        ("job.failed", "JobEvent"),
        ("job.corrected", "JobEvent"),
        ("batch.completed", "BatchEvent"),
    ):
        out[event] = {
            "post": {
                "summary": f"{event}, signed by the Standard Webhooks scheme",
                "description": "Headers `webhook-id` (the same on every retry), "
                "`webhook-timestamp` and `webhook-signature` (`v1,` + base64 HMAC-SHA256 "
                "over `{webhook-id}.{webhook-timestamp}.{body}` with the tenant's secret).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=schema)}}
                    },
                },
                "responses": {"2XX": {"description": "received; any other answer is retried"}},
            }
        }
    return out
