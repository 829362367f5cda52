"""The registration check of custom models is bounded and refuses what cannot load.

``POST /v1/models`` checks a client's file with shared/onnx/proto.py. Issue 29: a file of
the empty protobuf field ``0a 00`` repeated cost ~130 bytes of the API's memory per input
byte (1.3 GB for 10 MB); these hold the check's own allocations to a few hundred kB
whatever the file (tracemalloc, not a timing). And models that no worker can run (an
operator of a foreign domain, also inside a subgraph; weights in external files) are
refused with a reason instead of failing every job later.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.onnx import proto as onnxproto
from shared.onnx.modelfile import ModelFileError, check_io, mapped
from testkit import registration_graphs as graphs

#: what the check may allocate (Python objects) on any input, file bytes not included
ALLOCATION_BOUND = 512 * 1024


def peak_of(check: Callable[[], object]) -> int:
    """The peak of Python allocations while ``check`` runs (it may raise)."""
    tracemalloc.start()
    try:
        check()
    except ModelFileError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("in_graph", [False, True], ids=["top-level", "in-the-graph"])
def test_junk_protobuf_is_refused_with_small_allocations(in_graph: bool) -> None:
    data = graphs.junk(10_000_000, in_graph=in_graph)
    with pytest.raises(ModelFileError, match="fields"):
        check_io(data)
    assert peak_of(lambda: check_io(data)) < ALLOCATION_BOUND


def test_a_real_model_is_read_with_small_allocations(model_home: Path) -> None:
    path = model_home / "u2netp.onnx"
    if not path.exists():
        pytest.skip("u2netp weights not fetched (cutout models fetch u2netp)")
    data = path.read_bytes()
    check_io(data)
    assert peak_of(lambda: check_io(data)) < ALLOCATION_BOUND
    # from an open file: an mmap, never a copy of the file
    with path.open("rb") as f, mapped(f) as view:
        check_io(view)
    check_io(path)


def test_valid_small_graphs_pass() -> None:
    check_io(graphs.mean_mask("x"))
    check_io(graphs.mean_mask("y", invert=True))
    check_io(graphs.nested(onnxproto.MAX_GRAPH_DEPTH))  # If bodies, within the depth cap


def test_ort_s_own_domains_pass() -> None:
    for domain in ("ai.onnx.ml", "com.microsoft"):
        helper = pytest.importorskip("onnx").helper
        mean = helper.make_node("ReduceMean", ["input.1"], ["mask"], axes=[1], keepdims=1)
        check_io(graphs.build([mean], domains={domain: 1}))


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_a_foreign_operator_domain_is_refused(depth: int) -> None:
    with pytest.raises(ModelFileError, match=r"'evil\.ops'.*no worker can run"):
        check_io(graphs.foreign_domain("evil.ops", depth=depth))


def test_a_foreign_opset_import_is_refused() -> None:
    helper = pytest.importorskip("onnx").helper
    mean = helper.make_node("ReduceMean", ["input.1"], ["mask"], axes=[1], keepdims=1)
    with pytest.raises(ModelFileError, match=r"opset import.*'my\.domain'"):
        check_io(graphs.build([mean], domains={"my.domain": 1}))


@pytest.mark.parametrize("where", ["initializer", "constant"])
@pytest.mark.parametrize("location", ["/etc/passwd", "../../../etc/shadow", "weights.bin"])
def test_external_data_is_refused(where: str, location: str) -> None:
    with pytest.raises(ModelFileError, match=r"tensor 'w'.*external data"):
        check_io(graphs.external_data(where, location))


def test_subgraphs_nested_too_deep_are_refused() -> None:
    with pytest.raises(ModelFileError, match="nests subgraphs"):
        check_io(graphs.nested(onnxproto.MAX_GRAPH_DEPTH + 1))


def test_two_graph_fields_are_refused() -> None:
    data = graphs.mean_mask("a")
    graph = next(v for n, v in onnxproto.Reader().fields(memoryview(data)) if n == 7)
    twice = data + b"\x3a" + graphs.varint(len(graph)) + bytes(graph)
    with pytest.raises(ModelFileError, match="more than one graph"):
        check_io(twice)


def test_a_long_name_is_refused_not_copied() -> None:
    onnx = pytest.importorskip("onnx")
    model = onnx.load_model_from_string(graphs.mean_mask("a"))
    model.graph.input[0].name = "x" * (onnxproto.MAX_NAME + 1)
    with pytest.raises(ModelFileError, match="longer than"):
        check_io(model.SerializeToString())


def test_truncated_and_odd_wire_types_are_refused() -> None:
    data = graphs.mean_mask("a")
    for bad in (data[: len(data) // 2], b"\x0b\x00", b"\x3a\xff\xff\xff\xff\x0f", b"\x00"):
        with pytest.raises(ModelFileError, match="not an ONNX model"):
            check_io(bad)
