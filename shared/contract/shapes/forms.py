"""The multipart request bodies, as typed dicts: ``POST /v1/jobs`` with an image file,
``POST /v1/batches`` with ``images`` files, rembg's ``POST /api/remove``, a corrected
mask (``PUT /v1/jobs/{id}/mask``) and a custom model (``POST /v1/models``).

A form's fields are text (and files), so every member is a string, a file or a rembg
flag; the values are read by the endpoints' own parsers (`api.fields`,
`api.rembg_compat`). The OpenAPI components named in :data:`FORMS` are generated from
these (`shared.contract.shapes.openapi`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Required

from pydantic import Field, WithJsonSchema
from typing_extensions import TypedDict  # pydantic needs its TypedDict on 3.11

from shared.contract.options import OPTION_NAMES

#: a file part: the bytes as sent
File = Annotated[bytes, WithJsonSchema({"type": "string", "contentEncoding": "binary"})]

_JOB_FIELDS: dict[str, Any] = {
    "image": Required[File],
    "webhook_url": str,
    "metadata": Annotated[str, Field(description="a JSON object, ≤ 16 KiB")],
    # every option is a field of its own (the JSON `options` object's members)
    **dict.fromkeys(OPTION_NAMES, str),
}
#: `POST /v1/jobs` as multipart/form-data
JobMultipart = TypedDict("JobMultipart", _JOB_FIELDS, total=False)  # type: ignore[misc]


class BatchMultipart(TypedDict, total=False):
    """`POST /v1/batches` as multipart/form-data: the files and batch-level fields."""

    images: Required[list[File]]
    webhook_url: str
    metadata: Annotated[str, Field(description="a JSON object")]
    options: Annotated[str, Field(description="a JSON object of options")]


class RemoveMultipart(TypedDict, total=False):
    """rembg's `POST /api/remove` form."""

    file: Required[File]
    model: str
    a: Annotated[bool, Field(description="alpha matting")]
    af: Annotated[int, Field(description="alpha matting foreground threshold")]
    ab: Annotated[int, Field(description="alpha matting background threshold")]
    ae: Annotated[int, Field(description="alpha matting erode size")]
    om: Annotated[bool, Field(description="only the mask")]
    ppm: Annotated[bool, Field(description="post-process the mask")]
    bgc: Annotated[str, Field(description="background colour: (255,255,255,255)")]


class MaskMultipart(TypedDict):
    """`PUT /v1/jobs/{id}/mask` as multipart/form-data."""

    mask: Required[Annotated[File, Field(description="a PNG: grey, or with an alpha channel")]]


class ModelMultipart(TypedDict, total=False):
    """`POST /v1/models`: a custom model and its record."""

    file: Required[Annotated[File, Field(description="the ONNX model")]]
    record: Required[Annotated[str, Field(description="its JSON record (a field or a file)")]]
    name: Annotated[str, Field(description="the name to serve it under (else the record's)")]
    scope: Literal["tenant", "global"]


#: component name → form
FORMS: dict[str, Any] = {
    "JobMultipart": JobMultipart,
    "BatchMultipart": BatchMultipart,
    "RemoveMultipart": RemoveMultipart,
    "MaskMultipart": MaskMultipart,
    "ModelMultipart": ModelMultipart,
}
