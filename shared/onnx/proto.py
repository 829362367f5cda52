"""A bounded reader of the ONNX protobuf fields that decide whether a model can be served.

The API has neither onnxruntime nor the ``onnx`` package, and a client's file must not
cost more than its size to check. So this walks the protobuf wire format itself, lazily:
generators over one :class:`memoryview` of the file (no copy, no list of fields), with

- a budget of :data:`MAX_FIELDS` fields examined over the whole check (u2net's 176 MB
  file takes 16,110: its weights are single ``raw_data`` fields, skipped unread), and of
  :data:`MAX_MODEL_FIELDS` fields in the ModelProto itself;
- subgraphs (``If``/``Loop``/``Scan`` bodies: AttributeProto ``g``, ``graphs``) followed at
  most :data:`MAX_GRAPH_DEPTH` levels deep;
- at most :data:`MAX_IO` graph inputs or outputs, and names of at most :data:`MAX_NAME`
  bytes, so that what is kept while reading stays small whatever the file holds.

Over any bound the model is refused (ModelFileError), never read further. What it refuses
besides (docs/security.md, "Custom models"): operators or opset imports of a domain other
than :data:`DOMAINS` (the ones ONNX Runtime's CPU build serves), tensors whose data lives
outside the file (TensorProto ``external_data`` or ``data_location`` EXTERNAL), more than
one ``graph`` (protobuf would merge them), and ``training_info``. After the walk, the
operators and opset imports it collected are checked against the table of what the workers'
ONNX Runtime serves (shared/onnx/ops.py).

Field numbers are onnx.proto's (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto, SparseTensorProto, ValueInfoProto, TypeProto, FunctionProto).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shared.onnx.ops import operator_problem

#: fields examined in one check, at every level together (u2net and u2netp take 16,110)
MAX_FIELDS = 250_000
#: fields of the ModelProto itself (a real one has about ten)
MAX_MODEL_FIELDS = 10_000
#: subgraphs within subgraphs (the main graph is level 0)
MAX_GRAPH_DEPTH = 8
#: graph inputs and outputs read (U²-Net's I/O is 1 and 7)
MAX_IO = 1024
#: the longest name or domain read (names are compared, never kept longer)
MAX_NAME = 4096
#: operator domains a served model may use: ONNX's own ("" is ai.onnx) and ONNX-ML, and
#: ONNX Runtime's contrib operators (com.microsoft), which its CPU build ships and which
#: optimized or quantized exports use. Any other domain needs a custom-op library that no
#: worker loads, so the model could never run.
DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
#: distinct operators, opset imports or local functions kept (U²-Net uses 14 operators)
MAX_OPS = 1024
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class ProtoError(ValueError):
    """The bytes are not a model this reader accepts; the message says why."""


def _corrupt() -> ProtoError:
    return ProtoError("not an ONNX model (truncated or corrupt protobuf)")


class Reader:
    """Fields of protobuf messages, counted against one budget."""

    def __init__(self, max_fields: int = MAX_FIELDS) -> None:
        self.left = max_fields
        self.max_fields = max_fields
        #: what shared/onnx/ops.py checks after the walk: the distinct (domain, op_type) of
        #: every node (subgraphs and function bodies too), the model's opset imports
        #: (domain -> version, "ai.onnx" as ""), every opset import (functions' too), and
        #: the (domain, name) of model-local functions
        self.ops: set[tuple[str, str]] = set()
        self.opsets: dict[str, int] = {}
        self.imports: set[tuple[str, int]] = set()
        self.functions: set[tuple[str, str]] = set()

    def keep(self, found: set[Any], item: tuple[str, Any]) -> None:
        """Add to one of the sets above, at most :data:`MAX_OPS` items each."""
        if item not in found:
            if len(found) >= MAX_OPS:
                raise ProtoError(f"the model has over {MAX_OPS} distinct operators; refused")
            found.add(item)

    def fields(self, buf: memoryview, cap: int | None = None) -> Iterator[tuple[int, Any]]:
        """(field number, value) of one message: an int for a varint, a memoryview slice
        for a length-delimited field, None for fixed-width ones (skipped)."""
        pos, end, seen = 0, len(buf), 0
        while pos < end:
            self.left -= 1
            seen += 1
            if self.left < 0:
                raise ProtoError(
                    f"the model has more than {self.max_fields} protobuf fields to check; "
                    "refused (U²-Net has 16,110)"
                )
            if cap is not None and seen > cap:
                raise ProtoError(f"the model has more than {cap} top-level fields; refused")
            key, pos = _varint(buf, pos)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _corrupt()
            if wire == 0:
                value, pos = _varint(buf, pos)
                yield number, value
            elif wire == 2:
                length, pos = _varint(buf, pos)
                if length > end - pos:
                    raise _corrupt()
                yield number, buf[pos : pos + length]
                pos += length
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
                if pos > end:
                    raise _corrupt()
                yield number, None
            else:
                raise ProtoError(f"not an ONNX model (protobuf wire type {wire})")


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _corrupt()
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def message(value: Any, what: str) -> memoryview:
    """A length-delimited field's bytes; ProtoError when the field has another type."""
    if not isinstance(value, memoryview):
        raise ProtoError(f"not an ONNX model ({what} is not a message)")
    return value


def text(value: Any, what: str) -> str:
    """A string field (at most MAX_NAME bytes, decoded leniently)."""
    view = message(value, what)
    if len(view) > MAX_NAME:
        raise ProtoError(f"{what} is longer than {MAX_NAME} bytes; refused")
    return bytes(view).decode("utf-8", "replace")


def shown(name: str) -> str:
    """A name as an error message shows it (at most 80 characters)."""
    return repr(name if len(name) <= 80 else name[:77] + "...")


def check_domain(domain: str, where: str) -> None:
    if domain not in DOMAINS:
        allowed = ", ".join(repr(d) for d in sorted(DOMAINS))
        raise ProtoError(
            f"{where} uses operator domain {shown(domain)}, which no worker can run "
            f"(allowed: {allowed})"
        )


# -- the walk -------------------------------------------------------------------------------

#: (name, dims, element type) of a graph input or output
IO = tuple[str, tuple[int | str, ...], int]
_MAX_DIMS = 64


def read_model(data: Any, max_fields: int = MAX_FIELDS) -> tuple[list[IO], list[IO]]:
    """Check a serialized model and give its (inputs without initializers, outputs).

    ``data`` is anything with the buffer protocol (bytes, an mmap): it is never copied.
    Raises ProtoError for bytes that are not a model this service can serve.
    """
    buf = memoryview(data).cast("B")
    reader = Reader(max_fields)
    graph = None
    for number, value in reader.fields(buf, cap=MAX_MODEL_FIELDS):
        if number == 7:
            if graph is not None:
                raise ProtoError("the model has more than one graph field; refused")
            graph = message(value, "the graph")
        elif number == 8:
            domain, version = _opset(reader, value, "the model")
            reader.opsets[domain] = max(version, reader.opsets.get(domain, version))
        elif number == 20:
            raise ProtoError("the model carries training_info, which is not served; refused")
        elif number == 25:
            _function(reader, message(value, "a function"))
    if graph is None:
        raise ProtoError("not an ONNX model (no graph)")
    inputs, outputs = _graph_io(reader, graph)
    weights = _check_graph(reader, graph, 0, {name for name, _, _ in inputs})
    problem = operator_problem(reader.ops, reader.opsets, reader.imports, reader.functions)
    if problem:
        raise ProtoError(problem)
    return [i for i in inputs if i[0] not in weights], outputs


def _graph_io(reader: Reader, graph: memoryview) -> tuple[list[IO], list[IO]]:
    inputs: list[IO] = []
    outputs: list[IO] = []
    for number, value in reader.fields(graph):
        if number in (11, 12):
            found = inputs if number == 11 else outputs
            if len(found) >= MAX_IO:
                raise ProtoError(f"the graph has more than {MAX_IO} inputs or outputs; refused")
            found.append(_value_info(reader, message(value, "a graph input or output")))
    return inputs, outputs


def _value_info(reader: Reader, buf: memoryview) -> IO:
    name, kind = "", 0
    dims: tuple[int | str, ...] = ()
    for number, value in reader.fields(buf):
        if number == 1:
            name = text(value, "an input or output name")
        elif number == 2:  # TypeProto
            for t_number, tensor in reader.fields(message(value, "a type")):
                if t_number == 1:  # tensor_type
                    kind, dims = _tensor_type(reader, message(tensor, "a tensor type"))
    return name, dims, kind


def _tensor_type(reader: Reader, buf: memoryview) -> tuple[int, tuple[int | str, ...]]:
    kind = 0
    dims: list[int | str] = []
    for number, value in reader.fields(buf):
        if number == 1 and isinstance(value, int):
            kind = value
        elif number == 2:  # TensorShapeProto
            dims = []
            for d_number, dim in reader.fields(message(value, "a shape")):
                if d_number != 1:
                    continue
                if len(dims) >= _MAX_DIMS:
                    raise ProtoError(f"an input or output has over {_MAX_DIMS} dimensions")
                dims.append(_dimension(reader, message(dim, "a dimension")))
    return kind, tuple(dims)


def _dimension(reader: Reader, buf: memoryview) -> int | str:
    found: int | str = "?"
    for number, value in reader.fields(buf):
        if number == 1 and isinstance(value, int):
            found = value
        elif number == 2:
            found = text(value, "a dimension name") or "?"
    return found


def _check_graph(reader: Reader, graph: memoryview, depth: int, names: set[str]) -> set[str]:
    """Check a graph's nodes and tensors; the ``names`` that are initializers."""
    weights: set[str] = set()
    for number, value in reader.fields(graph):
        if number == 1:
            _node(reader, message(value, "a node"), depth)
        elif number == 5:
            name = _tensor(reader, message(value, "an initializer"))
            if name in names:
                weights.add(name)
        elif number == 15:
            _sparse(reader, message(value, "a sparse initializer"))
    return weights


def _node(reader: Reader, buf: memoryview, depth: int) -> None:
    op_type = domain = ""
    for number, value in reader.fields(buf):
        if number == 4:
            op_type = text(value, "an operator type")
        elif number == 7:
            domain = text(value, "an operator domain")
            check_domain(domain, f"operator {shown(op_type)}")
        elif number == 5:
            _attribute(reader, message(value, "an attribute"), depth)
    reader.keep(reader.ops, ("" if domain == "ai.onnx" else domain, op_type))


def _attribute(reader: Reader, buf: memoryview, depth: int) -> None:
    for number, value in reader.fields(buf):
        if number in (5, 10):  # t, tensors
            _tensor(reader, message(value, "an attribute tensor"))
        elif number in (22, 23):  # sparse_tensor, sparse_tensors
            _sparse(reader, message(value, "an attribute sparse tensor"))
        elif number in (6, 11):  # g, graphs: a subgraph (If, Loop, Scan)
            if depth + 1 > MAX_GRAPH_DEPTH:
                raise ProtoError(
                    f"the model nests subgraphs more than {MAX_GRAPH_DEPTH} levels deep; refused"
                )
            _check_graph(reader, message(value, "a subgraph"), depth + 1, set())


def _tensor(reader: Reader, buf: memoryview) -> str:
    """A tensor's name, after checking that its data is in the file."""
    name, external = "", False
    for number, value in reader.fields(buf):
        if number == 8:
            name = text(value, "a tensor name")
        elif number == 13 or (number == 14 and value == _EXTERNAL):
            external = True
    if external:
        raise ProtoError(
            f"tensor {shown(name)} keeps its data outside the model file (external data); "
            "a served model must hold all its weights in the one file"
        )
    return name


def _sparse(reader: Reader, buf: memoryview) -> None:
    for number, value in reader.fields(buf):
        if number in (1, 2):  # values, indices
            _tensor(reader, message(value, "a sparse tensor's part"))


def _opset(reader: Reader, value: Any, where: str) -> tuple[str, int]:
    """(domain, version) of an OperatorSetIdProto, "ai.onnx" as ""."""
    name, version = "", 0
    for number, field in reader.fields(message(value, "an opset import")):
        if number == 1:
            name = text(field, "an opset domain")
            check_domain(name, f"{where}'s opset import")
        elif number == 2 and isinstance(field, int):
            version = field
    found = ("" if name == "ai.onnx" else name, version)
    reader.keep(reader.imports, found)
    return found


def _function(reader: Reader, buf: memoryview) -> None:
    name = domain = ""
    for number, value in reader.fields(buf):
        if number == 1:
            name = text(value, "a function name")
        elif number == 10:
            domain = text(value, "a function domain")
            check_domain(domain, "a model-local function")
        elif number == 9:
            _opset(reader, value, "a model-local function")
        elif number == 7:
            _node(reader, message(value, "a function node"), 1)
    reader.keep(reader.functions, ("" if domain == "ai.onnx" else domain, name))
