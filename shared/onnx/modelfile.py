"""Custom model files: names, the I/O every servable model must have, and its record.

A custom model (``cutout tune``, ``cutout models add``, ``POST /v1/models``) must take and
give exactly what the pinned U²-Net files do, so that the same pre- and post-processing
apply unchanged: one float32 input ``input.1`` of 1×3×320×320 and seven float32 outputs
``1959``…``1965`` of 1×1×320×320 (the first is the fused mask the engine reads).

The check reads the graph straight from the protobuf, bounded (shared/onnx/proto.py: the API
image has neither onnxruntime nor the ``onnx`` package). Both sides import this module;
it imports neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from shared.onnx.proto import IO, ProtoError, read_model

BUILTIN_MODELS = ("u2net", "u2netp")
#: names a custom model may not take (built-ins and what fast mode builds)
RESERVED = (*BUILTIN_MODELS, "u2net-fast")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
INPUT = ("input.1", (1, 3, 320, 320))
OUTPUTS = tuple((name, (1, 1, 320, 320)) for name in map(str, range(1959, 1966)))
_FLOAT = 1  # onnx TensorProto.FLOAT
#: CUTOUT_MAX_MODEL_BYTES's default: u2net's 176 MB file and some room (a U²-Net with the
#: same I/O is at most that size; a bigger limit only lets a tenant store more)
MAX_MODEL_BYTES = 200_000_000
#: the most bytes a model's JSON record may have (``cutout tune`` writes ~2-4 KB)
MAX_RECORD_BYTES = 64 * 1024


class ModelFileError(ValueError):
    """A model file or name that cannot be served; the message says why."""


def check_name(name: str) -> str:
    """``name`` if it may name a custom model; raises ModelFileError otherwise."""
    if not NAME_RE.fullmatch(name or ""):
        # a hostile name is echoed cut short, never whole (it may be kilobytes)
        said = repr(name) if len(name or "") <= 60 else f"{name[:48]!r}… ({len(name)} chars)"
        raise ModelFileError(
            f"model name {said} must be 1-48 of a-z, 0-9, '_' and '-', starting with a "
            "letter or digit"
        )
    if name in RESERVED:
        raise ModelFileError(f"model name {name!r} is a built-in model's")
    return name


def sha256_of(data: bytes | memoryview | Path | BinaryIO | typing.IO[bytes]) -> str:
    """The hex sha256 of bytes, a file (by path) or an open binary file (read from where
    it stands, in chunks: never held whole)."""
    if isinstance(data, bytes | memoryview):
        return hashlib.sha256(data).hexdigest()
    if isinstance(data, Path):
        with data.open("rb") as f:
            return sha256_of(f)
    digest = hashlib.sha256()
    while chunk := data.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def read_io(data: Any) -> tuple[list[IO], list[IO]]:
    """(inputs without initializers, outputs) of a serialized ONNX model: (name, dims,
    element type) each, after the bounded checks of :mod:`shared.onnx.proto` (operator
    domains, external data, field and depth budgets). ``data`` is bytes or any buffer (an
    mmap of the upload): never copied. Raises ModelFileError."""
    try:
        return read_model(data)
    except ProtoError as exc:
        problem = str(exc)
    # raised outside the handler: no context keeps the reader's frames (and their views
    # of an mmap) alive
    raise ModelFileError(problem)


def check_io(data: Any) -> None:
    """Raise ModelFileError unless the ONNX model has exactly the U²-Net input and outputs
    (and passes :func:`read_io`'s checks). ``data``: bytes, a buffer or a Path."""
    if isinstance(data, Path):
        with data.open("rb") as f, mapped(f) as view:
            return check_io(view)
    got_in, got_out = read_io(data)
    want_in = [(INPUT[0], INPUT[1], _FLOAT)]
    if got_in != want_in:
        raise ModelFileError(f"input must be float32 {INPUT[0]} {INPUT[1]}, got {got_in[:4]}")
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
            + ", ".join(f"{n} {s}" for n, s, _ in got_out[:10])
        )
    return None


@contextlib.contextmanager
def mapped(f: BinaryIO) -> Iterator[memoryview]:
    """The whole open file as a read-only memoryview (an mmap: pages, not a copy)."""
    fd = f.fileno()  # (a spooled upload moves to its file here)
    f.flush()  # whatever is still in a buffer
    size = os.fstat(fd).st_size
    if size == 0:
        yield memoryview(b"")
        return
    mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    try:
        yield memoryview(mm)
    finally:
        # a view still alive (a traceback's frames) keeps it open until it is collected
        with contextlib.suppress(BufferError):
            mm.close()


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
    try:
        # a lone surrogate escape ("\ud800") parses in Python but is no Unicode text: Redis's
        # cjson cannot read such a record back (the quota script would not count its bytes)
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ModelFileError(
            "the record holds text that is not valid Unicode (a lone surrogate escape such "
            "as \\ud800)"
        ) from None
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
