"""BatchCollector groups concurrent calls; symbolic_batch makes the batch dim free."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from worker.engine.batching import BATCH_DIM, BatchCollector, symbolic_batch


def _call_together(collector: BatchCollector, arrays: list[np.ndarray], infer):  # type: ignore[no-untyped-def]
    results: list[object] = [None] * len(arrays)

    def one(i: int) -> None:
        try:
            results[i] = collector.run("m", arrays[i], infer)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(arrays))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_full_batch_runs_once_and_each_caller_gets_its_rows() -> None:
    seen: list[int] = []

    def infer(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape[0])
        return batch * 2

    collector = BatchCollector(4, max_wait=5.0)  # long wait: only a full batch ends it
    arrays = [np.full((1, 3), i, np.float32) for i in range(4)]
    results = _call_together(collector, arrays, infer)
    assert seen == [4]
    for i, out in enumerate(results):
        assert np.array_equal(out, arrays[i] * 2)
    assert collector.batched_calls == 1


def test_error_reaches_every_caller_of_the_batch() -> None:
    def infer(batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    collector = BatchCollector(2, max_wait=5.0)
    results = _call_together(collector, [np.zeros((1, 1)), np.ones((1, 1))], infer)
    assert all(isinstance(r, RuntimeError) for r in results)


def test_lone_caller_runs_alone_after_the_wait() -> None:
    collector = BatchCollector(4, max_wait=0.01)
    out = collector.run("m", np.ones((1, 2)), lambda b: b + 1)
    assert np.array_equal(out, np.full((1, 2), 2.0))
    assert collector.calls == 1
    assert collector.batched_calls == 0


def test_size_one_calls_straight_through() -> None:
    collector = BatchCollector(1)
    assert np.array_equal(collector.run("m", np.ones((1, 1)), lambda b: b * 3), [[3.0]])
    assert collector.calls == 0  # no collector bookkeeping at all


def test_symbolic_batch_frees_first_dim(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    mid = helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "g",
        [x],
        [y],
        value_info=[mid],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))

    model = onnx.load_from_string(symbolic_batch(path))
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == BATCH_DIM
        assert not dims[0].HasField("dim_value")
        assert dims[1].dim_value == 3
    assert len(model.graph.value_info) == 0
