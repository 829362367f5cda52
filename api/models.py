"""``/v1/models``: custom models registered with the service, per tenant or global.

``POST /v1/models`` (multipart: ``file`` the ONNX model, ``record`` its JSON record as
``cutout tune`` writes it, optional ``scope=global`` for operator tenants) checks the
model's I/O with the ``onnx`` package (never onnxruntime: the API stays without it) and
that the record names the file's sha256, stores the file in the bucket and the record in
Redis (shared/modelstore.py). ``GET /v1/models`` lists what the caller may use: the
built-in models this deployment serves, global models, and the caller's own.
``DELETE /v1/models/{name}`` removes the caller's own (``?scope=global``: an operator's).

Every request also gets the option parser's custom-model check (shared/options.py):
``model=NAME`` is accepted at submit only for a model the caller may use, so an unknown
or removed model is a 422 ``invalid_option`` there, never a failed job later.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from api.openapi import doc
from api.services import current
from shared.errors import CutoutError, InvalidRequest, NotFound, PayloadTooLarge
from shared.modelfile import (
    MAX_MODEL_BYTES,
    ModelFileError,
    check_io,
    check_name,
    check_record,
    sha256_of,
)
from shared.modelstore import GLOBAL, ModelRegistry, tenant_scope
from shared.options import CUSTOM_MODEL_CHECK

bp = Blueprint("models", __name__, url_prefix="/v1/models")

#: the largest body POST /v1/models accepts (a model, its record and the envelope)
BODY_LIMIT = MAX_MODEL_BYTES + 1024 * 1024

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


class InvalidModel(CutoutError):
    code = "invalid_model"
    status = 422
    title = "The model cannot be served"


def registry() -> ModelRegistry:
    return current().models


def _public(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "key"}
    out["kind"] = "custom"
    return out


def install(app: Flask) -> None:
    """Register the blueprint and the per-request custom-model check."""
    app.register_blueprint(bp)

    @app.before_request
    def allow_registered_models() -> None:
        tenant = g.get("tenant")
        if tenant is None:
            return
        found: dict[str, bool] = {}

        def check(name: str) -> bool:
            if name not in found:
                found[name] = registry().resolve(tenant, name) is not None
            return found[name]

        g.model_check_token = CUSTOM_MODEL_CHECK.set(check)

    @app.teardown_request
    def forget_check(_exc: BaseException | None) -> None:
        token = g.pop("model_check_token", None)
        if token is not None:
            CUSTOM_MODEL_CHECK.reset(token)


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
    "and outputs `1959`…`1965`), `record` (its JSON record from `cutout tune` or `cutout "
    "models add`: `name`, `base`, `sha256` at least) and optional `name` (else the "
    "record's) and `scope` (`tenant`, the default, or `global` for operator tenants). The "
    "record's sha256 must be the file's. Registering a name again replaces the model. "
    "Errors: `invalid_model` (I/O, record, sha256), `invalid_request`, `forbidden`, "
    "`payload_too_large`.",
    tags=["models"],
    request={"multipart/form-data": {"type": "object", "required": ["file", "record"]}},
    responses={
        201: {"description": "registered", "schema": MODEL_SCHEMA},
        403: {"description": "global scope without an operator key", "problem": True},
        422: {"description": "the model or record cannot be served", "problem": True},
    },
)
def register_model() -> tuple[Response, int]:
    scope = _scope()
    upload = request.files.get("file")
    raw_record = request.files.get("record")
    text = (
        raw_record.read().decode("utf-8", "replace") if raw_record else request.form.get("record")
    )
    if upload is None or not text:
        raise InvalidRequest("send the model as multipart field 'file' and its 'record'")
    data = upload.read(MAX_MODEL_BYTES + 1)
    if len(data) > MAX_MODEL_BYTES:
        raise PayloadTooLarge(f"a model may have at most {MAX_MODEL_BYTES} bytes")
    try:
        record = json.loads(text)
        name = check_name(request.form.get("name") or str(record.get("name", "")))
        check_io(data)
        record = check_record(record, sha256=sha256_of(data))
    except (ValueError, AttributeError) as exc:
        # ModelFileError is a ValueError, and so is bad JSON
        message = str(exc) if isinstance(exc, ModelFileError) else f"bad record: {exc}"
        raise InvalidModel(message) from None
    stored = registry().register(scope, name, data, {**record, "bytes": len(data)})
    response = Response(json.dumps(_public(stored)), mimetype="application/json")
    response.headers["Location"] = f"/v1/models/{name}"
    return response, 201


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
