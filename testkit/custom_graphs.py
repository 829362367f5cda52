"""Custom models with U²-Net's input and outputs, built with the ``onnx`` package, for the
tests and benchmarks of the custom-model sandbox (worker/engine/sandbox.py).

Each graph takes ``input.1`` (1×3×320×320 float32) and gives ``1959``…``1965``
(1×1×320×320 float32) like the pinned U²-Net files, so the API registers it; what it
does in between is the point:

- :func:`tiny`: the mean of the three channels (a few kB, runs in microseconds);
- :func:`expand_huge`: ``Expand`` of the input to ``[copies, 3, 320, 320]`` (8000 copies:
  9.8 GB of float32), then its mean: the memory blow-up of issue 29;
- :func:`tile_huge`: ``Tile`` of the input to the same 9.8 GB;
- :func:`constant_of_shape`: ``ConstantOfShape`` of ``count`` float32 zeros (2e9: 8 GB),
  summed into the mask;
- :func:`slow_loop`: a ``Loop`` of 512×512 ``MatMul``\\ s ``trips`` times (the default
  runs for hours): a model that never finishes;
- :func:`weights`: ``megabytes`` of weights a loaded session keeps;
- :func:`many_masks`: declares one mask, gives ``copies``;
- :func:`unknown_operator`: an operator the standard domain does not have (never loads;
  registration refuses it);
- :func:`wrong_arity`: a known operator with too few inputs (registration takes it; it
  never loads);
- :func:`custom_domain`: an operator of a domain ONNX Runtime does not know (never loads).
"""

from __future__ import annotations

from typing import Any

SIDE = 320
OUTPUT_NAMES = [str(n) for n in range(1959, 1966)]
OPSET = 17


def _model(nodes: list[Any], initializers: list[Any], mask: str, domains: Any = ()) -> bytes:
    """The serialized model whose seven outputs are all ``mask`` (1×1×320×320)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SIDE, SIDE])
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, SIDE, SIDE])
        for name in OUTPUT_NAMES
    ]
    nodes = [*nodes, *(helper.make_node("Identity", [mask], [name]) for name in OUTPUT_NAMES)]
    graph = helper.make_graph(nodes, "custom", [x], outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", OPSET), *(helper.make_opsetid(d, 1) for d in domains)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="cutout-tests")
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _ints(name: str, values: list[int]) -> Any:
    import numpy as np
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _channel_mean(source: str, out: str) -> Any:
    from onnx import helper

    return helper.make_node("ReduceMean", [source], [out], axes=[1], keepdims=1)


def tiny(tag: str = "") -> bytes:
    """The mean of the input's channels as the mask; ``tag`` only changes the sha256."""
    import onnx

    data = _model([_channel_mean("input.1", "mask")], [], "mask")
    if not tag:
        return data
    model = onnx.load_model_from_string(data)
    model.doc_string = f"tiny {tag}"
    return bytes(model.SerializeToString())


def expand_huge(copies: int = 8000) -> bytes:
    """``Expand`` to ``[copies, 3, 320, 320]`` float32, reduced back to one mask."""
    from onnx import helper

    nodes = [
        helper.make_node("Expand", ["input.1", "shape"], ["big"]),
        helper.make_node("ReduceMean", ["big"], ["one"], axes=[0], keepdims=1),
        _channel_mean("one", "mask"),
    ]
    return _model(nodes, [_ints("shape", [copies, 3, SIDE, SIDE])], "mask")


def tile_huge(copies: int = 8000) -> bytes:
    """``Tile`` of the input ``copies`` times along the batch axis (8000: 9.8 GB), reduced
    back to one mask: ONNX Runtime refuses a Tile output over 4 GiB before allocating."""
    from onnx import helper

    nodes = [
        helper.make_node("Tile", ["input.1", "repeats"], ["big"]),
        helper.make_node("ReduceMean", ["big"], ["one"], axes=[0], keepdims=1),
        _channel_mean("one", "mask"),
    ]
    return _model(nodes, [_ints("repeats", [copies, 1, 1, 1])], "mask")


def constant_of_shape(count: int = 2_000_000_000) -> bytes:
    """``ConstantOfShape`` of ``count`` float32 zeros, summed and added to the mask."""
    import numpy as np
    from onnx import TensorProto, helper

    value = helper.make_tensor("value", TensorProto.FLOAT, [1], np.zeros(1, np.float32))
    nodes = [
        helper.make_node("ConstantOfShape", ["count"], ["zeros"], value=value),
        helper.make_node("ReduceSum", ["zeros"], ["total"], keepdims=0),
        _channel_mean("input.1", "mean"),
        helper.make_node("Add", ["mean", "total"], ["mask"]),
    ]
    return _model(nodes, [_ints("count", [count])], "mask")


def slow_loop(trips: int = 10**12, size: int = 512) -> bytes:
    """A ``Loop`` of ``trips`` ``size``×``size`` matrix products, summed into the mask."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["v_in", "w"], ["product"]),
            # scaled back so the values stay finite (denormals or infinities could be
            # faster or slower; the point is only that it takes long)
            helper.make_node("Mul", ["product", "scale"], ["v_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [size, size]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [size, size]),
        ],
    )
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(np.array(trips, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(rng.random((size, size), np.float32), "v0"),
        numpy_helper.from_array(rng.random((size, size), np.float32), "w"),
        numpy_helper.from_array(np.array(1.0 / size, np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("Loop", ["trips", "cond", "v0"], ["v_final"], body=body),
        helper.make_node("ReduceSum", ["v_final"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        _channel_mean("input.1", "mean"),
        helper.make_node("Add", ["mean", "nothing"], ["mask"]),
    ]
    initializers.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    return _model(nodes, initializers, "mask")


def weights(megabytes: int) -> bytes:
    """A model carrying ``megabytes`` MB of float32 weights that a loaded session keeps
    (one value of them, picked at run time, is added to the channel mean)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMax", ["input.1"], ["peak"], keepdims=0),
        helper.make_node("Mul", ["peak", "zero"], ["nought"]),
        helper.make_node("Cast", ["nought"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["w", "index"], ["one"]),
        _channel_mean("input.1", "mean"),
        helper.make_node("Add", ["mean", "one"], ["mask"]),
    ]
    initializers = [
        numpy_helper.from_array(np.zeros(megabytes * 250_000, np.float32), "w"),
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
    ]
    return _model(nodes, initializers, "mask")


def many_masks(copies: int = 4) -> bytes:
    """Declares U²-Net's 1×1×320×320 outputs but gives ``copies``×1×320×320."""
    from onnx import helper

    nodes = [
        helper.make_node("Expand", ["input.1", "shape"], ["big"]),
        _channel_mean("big", "mask"),
    ]
    return _model(nodes, [_ints("shape", [copies, 3, SIDE, SIDE])], "mask")


def wrong_arity() -> bytes:
    """A graph with an ``Add`` of one input: its operators are ones ONNX Runtime serves, so
    registration (a check without a run) takes it, but it never loads."""
    from onnx import helper

    nodes = [helper.make_node("Add", ["input.1"], ["odd"]), _channel_mean("odd", "mask")]
    return _model(nodes, [], "mask")


def unknown_operator() -> bytes:
    """A graph with ``NoSuchOp`` of the standard domain: it parses, but never loads."""
    from onnx import helper

    nodes = [helper.make_node("NoSuchOp", ["input.1"], ["odd"]), _channel_mean("odd", "mask")]
    return _model(nodes, [], "mask")


def custom_domain() -> bytes:
    """A graph with an operator of the domain ``com.example.tenant`` (unknown to ORT)."""
    from onnx import helper

    nodes = [
        helper.make_node("Secret", ["input.1"], ["odd"], domain="com.example.tenant"),
        _channel_mean("odd", "mask"),
    ]
    return _model(nodes, [], "mask", domains=["com.example.tenant"])
