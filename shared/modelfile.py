"""Custom model files: names, the I/O every servable model must have, and its record.

A custom model (``cutout tune``, ``cutout models add``, ``POST /v1/models``) must take and
give exactly what the pinned U²-Net files do, so that the same pre- and post-processing
apply unchanged: one float32 input ``input.1`` of 1×3×320×320 and seven float32 outputs
``1959``…``1965`` of 1×1×320×320 (the first is the fused mask the engine reads).

The check reads the graph's I/O straight from the protobuf (the API image has neither
onnxruntime nor the ``onnx`` package). Both sides import this module; it imports neither.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

BUILTIN_MODELS = ("u2net", "u2netp")
#: names a custom model may not take (built-ins and what fast mode builds)
RESERVED = (*BUILTIN_MODELS, "u2net-fast")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
INPUT = ("input.1", (1, 3, 320, 320))
OUTPUTS = tuple((name, (1, 1, 320, 320)) for name in map(str, range(1959, 1966)))
_FLOAT = 1  # onnx TensorProto.FLOAT
MAX_MODEL_BYTES = 400_000_000


class ModelFileError(ValueError):
    """A model file or name that cannot be served; the message says why."""


def check_name(name: str) -> str:
    """``name`` if it may name a custom model; raises ModelFileError otherwise."""
    if not NAME_RE.fullmatch(name or ""):
        raise ModelFileError(
            f"model name {name!r} must be 1-48 of a-z, 0-9, '_' and '-', starting with a "
            "letter or digit"
        )
    if name in RESERVED:
        raise ModelFileError(f"model name {name!r} is a built-in model's")
    return name


def sha256_of(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with Path(data).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# A reader of the few ONNX protobuf fields the check needs (onnx.proto: ModelProto.graph=7;
# GraphProto.initializer=5, input=11, output=12; ValueInfoProto.name=1, type=2;
# TypeProto.tensor_type=1; Tensor.elem_type=1, shape=2; TensorShapeProto.dim=1;
# Dimension.dim_value=1, dim_param=2; TensorProto.name=8). The API image has no onnx
# package, and this reads a 176 MB file's I/O without parsing its weights.


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ModelFileError("not an ONNX model (truncated or corrupt protobuf)")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(buf: memoryview) -> list[tuple[int, Any]]:
    """(field number, value) pairs: ints for varints, memoryviews for bytes; others skipped."""
    out: list[tuple[int, Any]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ModelFileError("not an ONNX model (truncated or corrupt protobuf)")
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ModelFileError(f"not an ONNX model (protobuf wire type {wire})")
    return out


def _one(fields: list[tuple[int, Any]], number: int) -> Any:
    return next((v for n, v in fields if n == number), None)


def _value_info(buf: memoryview) -> tuple[str, tuple[int | str, ...], int]:
    fields = _fields(buf)
    name = bytes(_one(fields, 1) or b"").decode("utf-8", "replace")
    type_proto = _one(fields, 2)
    tensor = _one(_fields(type_proto), 1) if type_proto is not None else None
    if tensor is None:
        return name, (), 0
    tensor_fields = _fields(tensor)
    shape = _one(tensor_fields, 2)
    dims: list[int | str] = []
    for number, dim in _fields(shape) if shape is not None else []:
        if number != 1:
            continue
        dim_fields = _fields(dim)
        value = _one(dim_fields, 1)
        param = _one(dim_fields, 2)
        dims.append(value if value is not None else bytes(param or b"?").decode() or "?")
    return name, tuple(dims), int(_one(tensor_fields, 1) or 0)


def read_io(data: bytes) -> tuple[list[tuple[str, tuple[int | str, ...], int]], ...]:
    """(inputs without initializers, outputs) of a serialized ONNX model: (name, dims,
    element type) each. Raises ModelFileError when the bytes are not an ONNX model."""
    graph = _one(_fields(memoryview(data)), 7)
    if not isinstance(graph, memoryview):
        raise ModelFileError("not an ONNX model (no graph)")
    fields = _fields(graph)
    weights = set()
    for number, tensor in fields:
        if number == 5:
            weights.add(bytes(_one(_fields(tensor), 8) or b"").decode("utf-8", "replace"))
    inputs = [_value_info(v) for n, v in fields if n == 11]
    outputs = [_value_info(v) for n, v in fields if n == 12]
    return [i for i in inputs if i[0] not in weights], outputs


def check_io(data: bytes | Path) -> None:
    """Raise ModelFileError unless the ONNX model has exactly the U²-Net input and outputs."""
    raw = Path(data).read_bytes() if isinstance(data, Path) else data
    got_in, got_out = read_io(raw)
    want_in = [(INPUT[0], INPUT[1], _FLOAT)]
    if got_in != want_in:
        raise ModelFileError(f"input must be float32 {INPUT[0]} {INPUT[1]}, got {got_in}")
    # the pinned files leave some output dims symbolic: a symbolic dim matches any size
    fits = len(got_out) == len(OUTPUTS) and all(
        name == want
        and kind == _FLOAT
        and len(dims) == 4
        and all(isinstance(d, str) or d == w for d, w in zip(dims, shape, strict=True))
        for (name, dims, kind), (want, shape) in zip(got_out, OUTPUTS, strict=True)
    )
    if not fits:
        raise ModelFileError(
            "outputs must be float32 1959..1965 of (1, 1, 320, 320) each (U²-Net's), got "
            + ", ".join(f"{n} {s}" for n, s, _ in got_out)
        )


#: keys every record has (the rest is free-form: hyperparameters, metrics, versions)
RECORD_KEYS = ("name", "base", "sha256")


def check_record(record: Any, *, sha256: str) -> dict[str, Any]:
    """The record if it describes the file with ``sha256``; raises ModelFileError."""
    if not isinstance(record, dict):
        raise ModelFileError("the record must be a JSON object")
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ModelFileError(f"the record lacks {', '.join(missing)}")
    base = record["base"]
    base_name = base.get("name") if isinstance(base, dict) else base
    if base_name not in BUILTIN_MODELS:
        raise ModelFileError(f"the record's base must be one of {', '.join(BUILTIN_MODELS)}")
    if record["sha256"] != sha256:
        raise ModelFileError(f"the record names sha256 {record['sha256']}, the file's is {sha256}")
    return record


from shared.errors import CutoutError, ModelUnavailable  # noqa: E402 (errors after the helpers)


class ModelIntegrityError(CutoutError):
    """A custom model's bytes do not match the sha256 it was registered with: never loaded."""

    code = "model_integrity"
    status = 500
    title = "The model file does not match its registered sha256"


class UnknownModel(ModelUnavailable):
    """No model of that name is registered (or it was removed)."""

    code = "model_unavailable"
