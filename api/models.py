"""``/v1/models``: custom models registered with the service, per tenant or global.

``POST /v1/models`` (multipart: ``file`` the ONNX model, ``record`` its JSON record as
``cutout tune`` writes it, optional ``scope=global`` for operator tenants) checks the
model without running it (shared/onnx/proto.py: I/O, operator domains, external data, with
bounded work; the API has neither onnxruntime nor the ``onnx`` package) and that the
record names the file's sha256, reserves the tenant's quota, streams the file to the
bucket and stores the record in Redis (shared/stores/models.py). The upload is never read
into memory whole: werkzeug spools it to a file, checked through an mmap.
``GET /v1/models`` lists what the caller may use: the built-in models this deployment
serves, global models, and the caller's own.
``DELETE /v1/models/{name}`` removes the caller's own (``?scope=global``: an operator's).

Every request also gets the option parser's custom-model check (shared/contract/options.py):
``model=NAME`` is accepted at submit only for a model the caller may use, so an unknown
or removed model is a 422 ``invalid_option`` there, never a failed job later; the record
found is the one a job pins (:func:`pinned_sha256`, api/intake.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, g, has_app_context, request
from werkzeug.datastructures import FileStorage

from api.openapi import doc
from api.services import current
from shared.contract.options import ModelCheck
from shared.contract.settings import Settings
from shared.contract.shapes.jsontext import loads
from shared.errors import CutoutError, InvalidModel, InvalidRequest, NotFound, PayloadTooLarge
from shared.onnx.modelfile import (
    MAX_RECORD_BYTES,
    ModelFileError,
    check_io,
    check_name,
    check_record,
    mapped,
    sha256_of,
)
from shared.stores.models import GLOBAL, ModelRegistry, tenant_scope

bp = Blueprint("models", __name__, url_prefix="/v1/models")


def body_limit(settings: Settings) -> int:
    """The largest body POST /v1/models accepts: a model, its record and the envelope."""
    return settings.max_model_bytes + MAX_RECORD_BYTES + 1024 * 1024


MODEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "kind"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["builtin", "custom"]},
        "scope": {"type": "string", "description": "global or tenant:<tenant> (custom)"},
        "base": {"type": "object"},
        "sha256": {"type": "string"},
        "bytes": {"type": "integer"},
        "validation": {"type": "object", "description": "base and tuned metrics"},
        "registered_at": {"type": "string"},
    },
}


class Forbidden(CutoutError):
    code = "forbidden"
    status = 403
    title = "Not allowed for this API key"


def registry() -> ModelRegistry:
    return current().models


def _public(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "key"}
    out["kind"] = "custom"
    return out


def install(app: Flask) -> None:
    """Register the blueprint and the per-request custom-model check (``g.model_check``,
    read through :func:`model_check`)."""
    app.register_blueprint(bp)

    @app.before_request
    def allow_registered_models() -> None:
        tenant = g.get("tenant")
        if tenant is None:
            return
        # one lookup per name and request; the record found is the one a job pins
        found: dict[str, dict[str, Any] | None] = {}
        g.model_records = found

        def check(name: str) -> bool:
            if name not in found:
                found[name] = registry().resolve(tenant, name)
            return found[name] is not None

        g.model_check = check


def model_check() -> ModelCheck | None:
    """This request's check of custom model names (the caller's registered models), for
    the views to pass to ``parse_options``; None before authentication or outside a
    request (built-ins only)."""
    check: ModelCheck | None = g.get("model_check") if has_app_context() else None
    return check


def pinned_sha256(model: str) -> str | None:
    """The sha256 of the custom model ``model`` as this request's check found it (None
    for a built-in): a job records it, and the worker serves exactly that file."""
    records = g.get("model_records") or {}
    record = records.get(model)
    return str(record["sha256"]) if record and record.get("sha256") else None


def _scope() -> str:
    settings = current().settings
    wanted = (request.values.get("scope") or "").strip().lower()
    if wanted in ("", "tenant"):
        return tenant_scope(g.tenant)
    if wanted != GLOBAL:
        raise InvalidRequest(f"scope must be 'tenant' or 'global', got {wanted!r}")
    if g.tenant not in settings.operator_tenants:
        raise Forbidden("only operator tenants (CUTOUT_OPERATOR_TENANTS) manage global models")
    return GLOBAL


@bp.post("")
@doc(
    summary="Register a custom model",
    description="Multipart: `file` (the ONNX model: U²-Net's input `input.1` 1×3×320×320 "
    "and outputs `1959`…`1965`, at most `CUTOUT_MAX_MODEL_BYTES`), `record` (its JSON "
    "record from `cutout tune` or `cutout models add`: `name`, `base`, `sha256` at least; "
    "at most 64 KiB) and optional `name` (else the record's) and `scope` (`tenant`, the "
    "default, or `global` for operator tenants). The record's sha256 must be the file's. "
    "Registering a name again replaces the model. The file is checked without being run "
    "(docs/security.md, Custom models): only standard operator domains, no external data. "
    "Errors: `invalid_model` (I/O, operators, external data, record, sha256), "
    "`model_quota_exceeded` (`CUTOUT_MAX_MODELS_PER_TENANT`, "
    "`CUTOUT_MAX_MODEL_STORAGE_BYTES`), `invalid_request`, `forbidden`, `payload_too_large`.",
    tags=["models"],
    request={"multipart/form-data": "ModelMultipart"},
    responses={
        201: {"description": "registered", "schema": MODEL_SCHEMA},
        403: {"description": "global scope without an operator key", "problem": True},
        413: {"description": "the file or the record is over its limit", "problem": True},
        422: {
            "description": "the model or record cannot be served, or the quota is used up",
            "problem": True,
        },
    },
)
def register_model() -> tuple[Response, int]:
    settings = current().settings
    scope = _scope()
    upload = request.files.get("file")
    text = _record_text()
    if upload is None or not text:
        raise InvalidRequest("send the model as multipart field 'file' and its 'record'")
    size = upload.stream.seek(0, os.SEEK_END)
    if size > settings.max_model_bytes:
        raise PayloadTooLarge(
            f"a model may have at most {settings.max_model_bytes} bytes (CUTOUT_MAX_MODEL_BYTES)",
            field="file",
        )
    record = _parse_record(text)
    # the upload is a file werkzeug spooled to disk: checked through an mmap (the check
    # touches the graph's structure, not the weights), hashed and streamed to storage in
    # chunks, never read into the process whole
    try:
        name = check_name(request.form.get("name") or str(record.get("name", "")))
        with _mapped(upload) as data:
            check_io(data)
        upload.stream.seek(0)
        record = check_record(record, sha256=sha256_of(upload.stream))
    except ModelFileError as exc:
        raise InvalidModel(str(exc)) from None
    upload.stream.seek(0)
    stored = registry().register(
        scope,
        name,
        upload.stream,
        {**record, "bytes": size},
        max_models=settings.max_models_per_tenant,
        max_bytes=settings.max_model_storage_bytes,
    )
    response = Response(json.dumps(_public(stored)), mimetype="application/json")
    response.headers["Location"] = f"/v1/models/{name}"
    return response, 201


def _record_text() -> str | None:
    """The ``record`` part (a file or a form field), held to MAX_RECORD_BYTES."""
    part = request.files.get("record")
    raw = part.stream.read(MAX_RECORD_BYTES + 1) if part else request.form.get("record")
    if raw is not None and len(raw) > MAX_RECORD_BYTES:
        raise PayloadTooLarge(
            f"the record may have at most {MAX_RECORD_BYTES} bytes", field="record"
        )
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _parse_record(text: str) -> dict[str, Any]:
    """The record as a JSON object (bounded depth, jsonbody.loads); InvalidModel if not."""
    try:
        record = loads(text, "the record", field="record")
    except InvalidRequest as exc:
        raise InvalidModel(exc.message, field="record") from None
    if not isinstance(record, dict):
        raise InvalidModel("the record must be a JSON object", field="record")
    return record


@contextlib.contextmanager
def _mapped(upload: FileStorage) -> Iterator[memoryview]:
    stream: Any = upload.stream
    if not hasattr(stream, "fileno") or isinstance(stream, io.BytesIO):
        # a small part werkzeug kept in memory
        stream.seek(0)
        yield memoryview(stream.read())
        return
    with mapped(stream) as view:
        yield view


@bp.get("")
@doc(
    summary="The models the caller may use",
    description="Built-in models this deployment serves, global custom models and the "
    "caller's own (which win over a global one of the same name), with their records.",
    tags=["models"],
    responses={
        200: {
            "description": '`{"models": [...]}`',
            "schema": {
                "type": "object",
                "properties": {"models": {"type": "array", "items": MODEL_SCHEMA}},
            },
        }
    },
)
def list_models() -> Response:
    settings = current().settings
    builtin = [{"name": name, "kind": "builtin"} for name in settings.models]
    custom = [_public(r) for r in registry().visible(g.tenant)]
    return Response(json.dumps({"models": builtin + custom}), mimetype="application/json")


@bp.delete("/<name>")
@doc(
    summary="Remove a custom model",
    description="The caller's own model (`?scope=global`: a global one, operator tenants "
    "only). Jobs submitted after this refuse the name (`invalid_option`).",
    tags=["models"],
    responses={
        204: {"description": "removed"},
        404: {"description": "no such model", "problem": True},
    },
)
def delete_model(name: str) -> tuple[str, int]:
    if not registry().remove(_scope(), name):
        raise NotFound(f"no model {name!r} registered here")
    return "", 204
