"""docs/api.md's "Schemas" section, rendered from the same models as the OpenAPI schemas.

:func:`shapes_markdown` gives one field table per shape; the docs generator puts it
between ``<!-- generated:schemas -->`` markers.
"""

from __future__ import annotations

from typing import Any

from shared.contract.shapes.openapi import COMPONENTS, component_schemas

#: the order of the tables: what the API sends, then what it accepts
ORDER = (
    "Job",
    "JobResult",
    "Subject",
    "Box",
    "JobError",
    "Correction",
    "Webhook",
    "Batch",
    "BatchCounts",
    "JobPage",
    "Upload",
    "JobEvent",
    "BatchEvent",
    "JobJson",
    "BatchJson",
    "BatchItem",
    "UploadRequest",
)


def _type(schema: dict[str, Any]) -> str:
    """A short type for a table cell: `string`, `integer or null`, `Job[]`, …"""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})" if name in ORDER else f"`{name}`"
    if "anyOf" in schema:
        return " or ".join(_type(part) for part in schema["anyOf"])
    if "const" in schema:
        return f"`{schema['const']!r}`".replace("'", '"')
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"{_type(schema.get('items', {}))}[]"
    if kind == "object":
        return "object"
    return str(kind)


def _notes(schema: dict[str, Any]) -> str:
    notes = []
    if schema.get("description"):
        notes.append(str(schema["description"]))
    for part in [schema, *schema.get("anyOf", [])]:
        for key, label in (("format", "format"), ("pattern", "pattern")):
            if key in part:
                notes.append(f"{label} `{part[key]}`")
        for key, label in (("minimum", "≥"), ("maximum", "≤")):
            if key in part:
                notes.append(f"{label} {part[key]}")
        if "minItems" in part:
            notes.append(f"at least {part['minItems']}")
        if "maxItems" in part:
            notes.append(f"at most {part['maxItems']}")
    if schema.get("default") is not None:
        notes.append(f"default `{schema['default']}`")
    return "; ".join(notes).replace("|", "\\|").replace("\n", " ")


def shapes_markdown() -> str:
    """Markdown: a `###` heading, the shape's description and a field table per shape."""
    schemas = component_schemas()
    out: list[str] = []
    for name in ORDER:
        schema = schemas[name]
        mode = COMPONENTS[name][1]
        side = "Sent by the API" if mode == "serialization" else "A request body"
        out.append(f"### {name}\n")
        description = " ".join(str(schema.get("description", "")).split())
        out.append(f"{description} {side}; no other members.\n")
        if "oneOf" in schema:
            choices = " or ".join(f"`{part['required'][0]}`" for part in schema["oneOf"])
            out.append(f"Exactly one of {choices}.\n")
        out.append("| member | type | always present | notes |")
        out.append("| --- | --- | --- | --- |")
        required = set(schema.get("required", []))
        for field, prop in schema.get("properties", {}).items():
            present = "yes" if field in required else "no"
            out.append(f"| `{field}` | {_type(prop)} | {present} | {_notes(prop)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
