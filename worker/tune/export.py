"""Export a tuned :class:`~worker.tune.net.U2Net` to ONNX with exactly the base's I/O.

TorchScript's exporter refuses numeric value names, so the graph is exported with
placeholder names and renamed to the pinned files' ``input.1`` and ``1959``…``1965``
afterwards; opset 11 as the pinned files. On export ONNX Runtime runs the file on probe
inputs and every output must match the trainer's within :data:`TOLERANCE`.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from shared.onnx.modelfile import INPUT, OUTPUTS, check_io
from worker.tune.net import U2Net

#: largest absolute difference allowed between ONNX Runtime's and torch's sigmoid outputs
TOLERANCE = 5e-4  # an eighth of one grey level of the 8-bit mask


class ExportMismatch(RuntimeError):
    """ONNX Runtime's output of the exported file differs from the trainer's."""


def _rename(model_bytes: bytes) -> bytes:
    import onnx

    model = onnx.load_model_from_string(model_bytes)
    graph = model.graph
    names = {"x": INPUT[0], **{f"d{i}": name for i, (name, _) in enumerate(OUTPUTS)}}
    for value in [*graph.input, *graph.output]:
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    return model.SerializeToString()


def export_onnx(model: U2Net) -> bytes:
    """The ONNX bytes of ``model``; its I/O checked against the pinned files'."""
    model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            model,
            (torch.zeros(INPUT[1]),),
            buffer,  # type: ignore[arg-type]  # torch's stub omits file objects
            input_names=["x"],
            output_names=[f"d{i}" for i in range(len(OUTPUTS))],
            opset_version=11,
            dynamo=False,
        )
    data = _rename(buffer.getvalue())
    check_io(data)
    return data


def check_parity(model: U2Net, data: bytes, probes: list[np.ndarray]) -> float:
    """The largest difference between ONNX Runtime on ``data`` and ``model`` over
    ``probes`` (1×3×320×320 inputs); raises ExportMismatch above :data:`TOLERANCE`."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    model.eval()
    for probe in probes:
        ours = session.run(None, {INPUT[0]: probe})
        with torch.no_grad():
            theirs = model(torch.from_numpy(probe))
        for a, b in zip(ours, theirs, strict=True):
            worst = max(worst, float(np.abs(a - b.numpy()).max()))
    if worst > TOLERANCE:
        raise ExportMismatch(
            f"ONNX Runtime differs from the trainer by {worst:.2e} (> {TOLERANCE:g})"
        )
    return worst
