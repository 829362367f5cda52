"""The OpenAPI 3.1 document, generated from the routes themselves so it cannot drift.

Each view may carry ``@doc(...)`` metadata; :func:`build_document` walks ``app.url_map``,
so every route appears (an undocumented one with a generic entry, which a unit test
refuses), with its real methods and path parameters. Schemas of the job, batch,
problem and options objects and of every request body come from the code: the shape
models and forms of ``shared.contract.shapes`` and ``shared.contract.options.Options``'s fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue

from api.removebg_request import removebg_schemas
from shared.contract.options import options_schema
from shared.contract.shapes.openapi import component_schemas, webhooks

F = TypeVar("F", bound=Callable[..., Any])

OPENAPI_VERSION = "3.1.0"
DOC_ATTR = "_openapi"
HIDDEN_ATTR = "_openapi_hidden"
PROTECTED_PREFIXES = ("/v1/", "/api/", "/v1.0/")

bp = Blueprint("openapi", __name__)


def not_an_operation(view: F) -> F:
    """Leave this view out of the document: it only answers an error for paths or methods
    that are not operations (remove.bg's 405 and 404 in its own shape, say), or it is an
    alias of a listed operation (``/v1.0/removebg/`` with its trailing slash)."""
    setattr(view, HIDDEN_ATTR, True)
    return view


def doc(
    summary: str,
    *,
    description: str | None = None,
    tags: list[str] | None = None,
    request: dict[str, Any] | None = None,
    responses: dict[int | str, dict[str, Any]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Attach OpenAPI metadata to a view.

    ``request`` maps content types to schemas; ``responses`` maps status codes to
    ``{"description", "schema"?, "problem"?: bool, "content_type"?, "content"?,
    "headers"?}`` (``content``: several media types, each a schema or None for bytes).
    A schema given as a string is a reference to ``components.schemas``.
    """

    def decorate(view: F) -> F:
        setattr(
            view,
            DOC_ATTR,
            {
                "summary": summary,
                "description": description,
                "tags": tags or [],
                "request": request,
                "responses": responses or {},
                "parameters": parameters or [],
            },
        )
        return view

    return decorate


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schema(value: Any) -> dict[str, Any]:
    return ref(value) if isinstance(value, str) else value


_RULE_ARG = re.compile(r"<(?:(?P<conv>[a-zA-Z_]\w*)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}}


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """werkzeug rule → OpenAPI path template and its path parameters."""
    params = []
    for match in _RULE_ARG.finditer(rule):
        params.append(
            {
                "name": match.group("name"),
                "in": "path",
                "required": True,
                "schema": _CONVERTER_TYPES.get(match.group("conv") or "", {"type": "string"}),
            }
        )
    return _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule), params


_BINARY = {"type": "string", "contentEncoding": "binary"}


def _response(status: int | str, spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": spec.get("description") or str(status)}
    if spec.get("problem"):
        out["content"] = {"application/problem+json": {"schema": ref("Problem")}}
    elif "content" in spec:
        # several media types: {content type: schema, or None for binary bytes}
        out["content"] = {
            ct: {"schema": _schema(s) if s is not None else _BINARY}
            for ct, s in spec["content"].items()
        }
    elif "schema" in spec or "content_type" in spec:
        content_type = spec.get("content_type", "application/json")
        schema = (
            _schema(spec["schema"])
            if "schema" in spec
            else (
                {"type": "string", "contentEncoding": "binary"}
                if not content_type.startswith("text/")
                else {"type": "string"}
            )
        )
        out["content"] = {content_type: {"schema": schema}}
    if spec.get("headers"):
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in spec["headers"].items()
        }
    return out


_UNDOCUMENTED: dict[str, Any] = {
    "description": None,
    "tags": [],
    "request": None,
    "responses": {},
    "parameters": [],
}


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document for every rule in ``app.url_map`` (static files excepted)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Cutout",
            "version": _version(),
            "description": "Background removal as a service: asynchronous jobs with "
            "polling or signed webhooks, and a rembg-compatible synchronous endpoint.",
        },
        "servers": [{"url": "/"}],
        "paths": paths(app),
        "webhooks": webhooks(),
        "components": {"schemas": schemas(), "securitySchemes": SECURITY_SCHEMES},
    }


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API key (CUTOUT_API_KEYS)"},
    "x_api_key": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "the same API keys, as remove.bg's clients send them",
    },
}


def paths(app: Flask) -> dict[str, dict[str, Any]]:
    """``paths``: each documented rule's operations, one per method."""
    out: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        if rule.endpoint == "static" or getattr(view, HIDDEN_ATTR, False):
            continue
        path, path_params = openapi_path(rule.rule)
        meta = getattr(view, DOC_ATTR, None) or {
            "summary": f"{rule.endpoint} (undocumented)",
            **_UNDOCUMENTED,
        }
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            operation_id = rule.endpoint.replace(".", "_") + (
                "" if len(methods) == 1 else f"_{method.lower()}"
            )
            protected = rule.rule.startswith(PROTECTED_PREFIXES)
            out.setdefault(path, {})[method.lower()] = operation(
                operation_id, meta, path_params, protected
            )
    return out


def operation(
    operation_id: str, meta: dict[str, Any], path_params: list[dict[str, Any]], protected: bool
) -> dict[str, Any]:
    """One operation from a view's ``@doc`` metadata (``protected``: needs an API key)."""
    out: dict[str, Any] = {"operationId": operation_id, "summary": meta["summary"]}
    if meta["description"]:
        out["description"] = meta["description"]
    if meta["tags"]:
        out["tags"] = meta["tags"]
    parameters = path_params + meta["parameters"]
    if parameters:
        out["parameters"] = parameters
    if meta["request"]:
        out["requestBody"] = {
            "required": True,
            "content": {ct: {"schema": _schema(s)} for ct, s in meta["request"].items()},
        }
    responses = {str(code): _response(code, spec) for code, spec in meta["responses"].items()}
    if protected:
        out["security"] = [{"bearer": []}, {"x_api_key": []}]
        responses.setdefault(
            "401", _response(401, {"description": "missing or invalid API key", "problem": True})
        )
    else:
        out["security"] = []
    responses.setdefault(
        "default",
        _response(
            "default",
            {"description": "an error (problem+json with a stable code)", "problem": True},
        ),
    )
    out["responses"] = responses
    return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cutout")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0"


def schemas() -> dict[str, Any]:
    from api.errors import problem_schema

    return {
        "Problem": problem_schema(),
        "Options": options_schema(),
        # Job, Batch, JobJson, JobMultipart, Upload, …: from the shape models and forms
        **component_schemas(),
        # remove.bg's request bodies: from its request model
        **removebg_schemas(),
    }


@bp.get("/openapi.json")
@doc(
    summary="This OpenAPI document",
    tags=["operations"],
    responses={200: {"description": "OpenAPI 3.1", "schema": {"type": "object"}}},
)
def openapi_json() -> ResponseReturnValue:
    return jsonify(build_document(current_app))
