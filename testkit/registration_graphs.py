"""Tiny ONNX models with U²-Net's input and outputs, for the registration checks of
``POST /v1/models`` (shared/onnx/proto.py): valid ones that a worker can run, and ones the
check must refuse (a foreign operator domain, in the main graph or a subgraph; external
data; subgraphs nested too deep). Built with the ``onnx`` package.

Each takes ``input.1`` (1×3×320×320 float32) and gives ``1959``…``1965``
(1×1×320×320 float32). :func:`mean_mask` is a model a worker serves: the mean of the
input's channels as the mask (``invert``: its negative, so the cut-out is the opposite
side of a two-tone photo), a few kB.
"""

from __future__ import annotations

from typing import Any

SIDE = 320
OUTPUTS = [str(n) for n in range(1959, 1966)]


def _helper() -> Any:
    from onnx import helper

    return helper


def build(
    nodes: list[Any],
    *,
    mask: str = "mask",
    initializers: list[Any] | None = None,
    domains: dict[str, int] | None = None,
    doc: str = "",
) -> bytes:
    """A serialized model whose seven outputs are all ``mask``."""
    from onnx import TensorProto

    helper = _helper()
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SIDE, SIDE])
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, SIDE, SIDE])
        for name in OUTPUTS
    ]
    nodes = [*nodes, *(helper.make_node("Identity", [mask], [name]) for name in OUTPUTS)]
    graph = helper.make_graph(nodes, "g", [x], outputs, initializer=initializers or [])
    opsets = [helper.make_opsetid("", 13)]
    opsets += [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="cutout-tests")
    model.ir_version = 8
    model.doc_string = doc
    return bytes(model.SerializeToString())


def mean_mask(tag: str = "", *, invert: bool = False, pad: int = 0) -> bytes:
    """The channel mean (negated with ``invert``) as the mask. ``tag`` changes only the
    sha256; ``pad`` adds that many bytes of doc string (a model of a chosen size)."""
    helper = _helper()
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["m"], axes=[1], keepdims=1)]
    nodes.append(helper.make_node("Neg" if invert else "Identity", ["m"], ["mask"]))
    return build(nodes, doc=tag + " " * pad)


def foreign_domain(domain: str = "evil.ops", depth: int = 0) -> bytes:
    """An operator of ``domain``: in the main graph (``depth`` 0) or ``depth`` levels of
    ``If`` subgraphs down. The opset import of ``domain`` is left out when nested, so
    that only the node itself is wrong."""
    inner = _helper().make_node("Relu", ["m"], ["r"], domain=domain)
    return _nested(inner, depth, {domain: 1} if depth == 0 else {})


def nested(depth: int) -> bytes:
    """A plain Relu ``depth`` levels of ``If`` subgraphs down."""
    return _nested(_helper().make_node("Relu", ["m"], ["r"]), depth, {})


def _nested(node: Any, depth: int, domains: dict[str, int]) -> bytes:
    import numpy as np
    from onnx import TensorProto, numpy_helper

    helper = _helper()
    body = [node]
    for level in range(depth):
        out = helper.make_tensor_value_info("r", TensorProto.FLOAT, None)
        branch = helper.make_graph(body, f"b{level}", [], [out])
        body = [helper.make_node("If", ["c"], ["r"], then_branch=branch, else_branch=branch)]
    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["m"], axes=[1], keepdims=1),
        *body,
        helper.make_node("Identity", ["r"], ["mask"]),
    ]
    cond = numpy_helper.from_array(np.array(True), "c")
    return build(nodes, initializers=[cond], domains=domains)


def external_data(where: str = "initializer", location: str = "/etc/passwd") -> bytes:
    """A tensor whose data lives outside the file: an ``initializer`` or a ``Constant``'s
    attribute; ``location`` is its external_data location."""
    from onnx import TensorProto

    helper = _helper()
    tensor = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    mean = helper.make_node("ReduceMean", ["input.1"], ["m"], axes=[1], keepdims=1)
    add = helper.make_node("Add", ["m", "w"], ["mask"])
    if where == "initializer":
        return build([mean, add], initializers=[tensor])
    constant = helper.make_node("Constant", [], ["w"], value=tensor)
    return build([mean, constant, add])


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def junk(size: int, *, in_graph: bool = False) -> bytes:
    """``size`` bytes of the empty protobuf field ``0a 00`` repeated (issue 29's file);
    ``in_graph``: wrapped as the ModelProto's graph, so that every pair reads as a node."""
    body = b"\x0a\x00" * (size // 2)
    return b"\x3a" + varint(len(body)) + body if in_graph else body
