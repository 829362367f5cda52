"""Whether the workers' ONNX Runtime can load a model's operators and opset imports.

shared/onnx/proto.py collects, while it reads a model, the distinct (domain, op_type) of its
nodes, its opset imports and its model-local functions; this checks them against
shared/onnx/ort_ops.py, the table that ``python -m worker.engine.ops_table`` generates from the
workers' onnxruntime (the API has neither onnxruntime nor onnx). Refused: an opset import
above what ONNX Runtime knows for its domain, a model without an ai.onnx opset import
(ONNX's checker requires one), and an operator (not a model-local function) that is unknown
or has no kernel (nor function body) at the model's opset of its domain (at the highest one
where the model does not import the domain, as ONNX Runtime does). A node in a model-local
function's body is checked at the model's opsets.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.onnx.ort_ops import OPS, OPSETS


def _shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


def _domain(domain: str) -> str:
    return "ai.onnx" if domain == "" else domain


def operator_problem(
    ops: Iterable[tuple[str, str]],
    opsets: dict[str, int],
    imports: Iterable[tuple[str, int]],
    functions: set[tuple[str, str]],
) -> str | None:
    """Why no worker could load a model with these, or None when it can. ``ops``:
    (domain, op_type) of every node; ``opsets``: the model's domain -> version; ``imports``:
    every (domain, version) imported (the model's and its functions'); ``functions``: the
    (domain, name) of model-local functions. Domains are "" for ai.onnx."""
    for domain, version in sorted(imports):
        highest = OPSETS.get(domain, 0)
        if version > highest:
            return (
                f"the model imports opset {version} of {_domain(domain)!r}; the workers' "
                f"ONNX Runtime serves up to {highest}"
            )
    if "" not in opsets:
        return "the model imports no ai.onnx opset (ONNX requires one)"
    for domain, op in sorted(ops):
        if (domain, op) in functions:
            continue
        # ONNX Runtime runs a domain the model does not import at its highest opset
        version = opsets.get(domain, OPSETS.get(domain, 0))
        ranges = OPS.get(domain, {}).get(op)
        if ranges is None:
            return (
                f"operator {_shown(op)} of {_domain(domain)!r} is unknown to the workers' "
                "ONNX Runtime"
            )
        if not any(first <= version <= last for first, last in ranges):
            served = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)
            return (
                f"operator {_shown(op)} has no implementation in the workers' ONNX Runtime at "
                f"opset {version} of {_domain(domain)!r} (it has one at opsets {served})"
            )
    return None
