"""Custom model files: names, the I/O every servable model must have, and its record.

A custom model (``cutout tune``, ``cutout models add``, ``POST /v1/models``) must take and
give exactly what the pinned U²-Net files do, so that the same pre- and post-processing
apply unchanged: one float32 input ``input.1`` of 1×3×320×320 and seven float32 outputs
``1959``…``1965`` of 1×1×320×320 (the first is the fused mask the engine reads).

The check reads the graph with the ``onnx`` package only (never onnxruntime: the API
runs it too). Both sides import this module; it imports neither.
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


def _dims(value_info: Any) -> tuple[int | str, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def check_io(data: bytes | Path) -> None:
    """Raise ModelFileError unless the ONNX model has exactly the U²-Net input and outputs."""
    import onnx

    try:
        raw = Path(data).read_bytes() if isinstance(data, Path) else data
        model = onnx.load_model_from_string(raw)
    except Exception as exc:  # noqa: BLE001 (protobuf raises its own kinds for bad bytes)
        raise ModelFileError(f"not an ONNX model ({type(exc).__name__})") from None
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    got_in = [(i.name, _dims(i), i.type.tensor_type.elem_type) for i in inputs]
    want_in = [(INPUT[0], INPUT[1], _FLOAT)]
    got_out = [(o.name, _dims(o), o.type.tensor_type.elem_type) for o in graph.output]
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
