"""Registration refuses operators and opsets the workers' ONNX Runtime cannot load.

Issue 29: a model with an unknown operator of a standard domain, an operator at an opset
with no kernel, or an opset import ONNX Runtime does not know was registered (201), and
every job on it then failed. The API checks the committed table shared/onnx/ort_ops.py
(shared/onnx/ops.py); each case here is also loaded with the real onnxruntime, so that what
the check refuses is what cannot load, and what it takes loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.onnx import ort_ops
from shared.onnx import proto as onnxproto
from shared.onnx.modelfile import ModelFileError, check_io
from testkit import custom_graphs
from testkit import registration_graphs as graphs

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper = onnx.helper


def loads(data: bytes) -> bool:
    """Whether the installed ONNX Runtime (CPU) builds a session of ``data``."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


def mean() -> Any:
    return helper.make_node("ReduceMean", ["input.1"], ["m"], axes=[1], keepdims=1)


def at_opset(data: bytes, version: int, domain: str = "") -> bytes:
    """``data`` with its opset import of ``domain`` set to ``version``."""
    model = onnx.load_model_from_string(data)
    [entry] = [o for o in model.opset_import if o.domain == domain]
    entry.version = version
    return bytes(model.SerializeToString())


def refused(data: bytes, says: str) -> None:
    with pytest.raises(ModelFileError, match=says):
        check_io(data)
    assert not loads(data)


def test_an_unknown_operator_of_the_standard_domain_is_refused() -> None:
    refused(custom_graphs.unknown_operator(), r"operator 'NoSuchOp' of 'ai\.onnx' is unknown")


def test_an_opset_onnx_runtime_does_not_know_is_refused() -> None:
    refused(at_opset(graphs.mean_mask("a"), 99), r"opset 99 of 'ai\.onnx'.*serves up to")
    data = graphs.build([mean()], mask="m", domains={"ai.onnx.ml": 1})
    check_io(data)
    assert loads(data)
    refused(at_opset(data, 99, "ai.onnx.ml"), r"opset 99 of 'ai\.onnx\.ml'")


def test_an_operator_below_its_first_kernel_is_refused() -> None:
    # Relu exists since opset 1, but ONNX Runtime's first CPU kernel is Relu-6
    data = graphs.build([mean(), helper.make_node("Relu", ["m"], ["mask"])])
    assert loads(at_opset(data, 6))
    check_io(at_opset(data, 6))
    refused(at_opset(data, 5), r"operator 'Relu' has no implementation.*opset 5 of 'ai\.onnx'")


def test_onnx_runtime_s_own_operators_pass() -> None:
    gelu = helper.make_node("Gelu", ["m"], ["mask"], domain="com.microsoft")
    # ONNX Runtime runs a domain without an import at its highest opset
    for data in (
        graphs.build([mean(), gelu]),
        graphs.build([mean(), gelu], domains={"com.microsoft": 1}),
    ):
        check_io(data)
        assert loads(data)


def test_a_model_without_an_ai_onnx_import_is_refused() -> None:
    model = onnx.load_model_from_string(graphs.mean_mask("x"))
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    refused(model.SerializeToString(), "imports no ai.onnx opset")


def test_an_unknown_operator_inside_a_loop_body_is_refused() -> None:
    def looped(op: str) -> bytes:
        body = helper.make_graph(
            [
                helper.make_node("Identity", ["cond"], ["cond_out"]),
                helper.make_node(op, ["state"], ["state_out"]),
            ],
            "body",
            [
                helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, []),
                helper.make_tensor_value_info("state", onnx.TensorProto.FLOAT, None),
            ],
            [
                helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []),
                helper.make_tensor_value_info("state_out", onnx.TensorProto.FLOAT, None),
            ],
        )
        loop = helper.make_node("Loop", ["", "", "m"], ["mask"], body=body)
        return graphs.build([mean(), loop])

    assert loads(looped("Relu"))
    check_io(looped("Relu"))
    refused(looped("NoSuchOp"), "'NoSuchOp'")


def test_a_model_local_function_call_passes() -> None:
    body = helper.make_node("Relu", ["x"], ["y"])
    function = helper.make_function(
        "com.microsoft", "LocalRelu", ["x"], ["y"], [body], [helper.make_opsetid("", 13)]
    )
    model = onnx.load_model_from_string(
        graphs.build(
            [mean(), helper.make_node("LocalRelu", ["m"], ["mask"], domain="com.microsoft")],
            domains={"com.microsoft": 1},
        )
    )
    model.functions.append(function)
    data = bytes(model.SerializeToString())
    assert loads(data)
    check_io(data)
    # the function's body is checked too
    function.node[0].op_type = "NoSuchOp"
    del model.functions[:]
    model.functions.append(function)
    with pytest.raises(ModelFileError, match="'NoSuchOp'"):
        check_io(model.SerializeToString())


def test_the_valid_test_graphs_pass() -> None:
    for data in (
        graphs.mean_mask("x"),
        graphs.nested(onnxproto.MAX_GRAPH_DEPTH),
        custom_graphs.tiny("t"),
        custom_graphs.slow_loop(),
        custom_graphs.constant_of_shape(),
    ):
        check_io(data)


@pytest.mark.parametrize("name", ["u2net", "u2netp"])
def test_the_real_models_pass(model_home: Path, name: str) -> None:
    path = model_home / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{name} weights not fetched (cutout models fetch {name})")
    check_io(path)


def test_many_distinct_operators_are_refused() -> None:
    nodes = [mean()]
    nodes += [helper.make_node(f"Op{n}", ["m"], [f"o{n}"]) for n in range(onnxproto.MAX_OPS)]
    with pytest.raises(ModelFileError, match="distinct operators"):
        check_io(graphs.build([*nodes, helper.make_node("Identity", ["m"], ["mask"])]))


def test_the_committed_table_accepts_only_what_the_installed_runtime_serves() -> None:
    """Every (domain, operator, opset) the table takes loads with the installed onnxruntime
    (a kernel, a function body, or resolved at load). Not equality: a newer onnxruntime may
    serve more; regenerate with ``python -m worker.engine.ops_table``."""
    from worker.engine.ops_table import served

    installed, top = served()
    for domain, highest in ort_ops.OPSETS.items():
        assert highest <= top[domain], domain
    for domain, ops in ort_ops.OPS.items():
        for op, ranges in ops.items():
            have = {v for a, b in installed[domain].get(op, ()) for v in range(a, b + 1)}
            want = {v for a, b in ranges for v in range(a, b + 1)}
            assert want <= have, (domain, op, sorted(want - have))
