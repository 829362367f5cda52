"""ONNX Runtime sessions: providers, threads, and the CUDA check rembg users miss.

One session per model per process (the :class:`~worker.engine.Engine` caches them). The
provider order is CUDA, then CPU, among those this onnxruntime build has. Threads are set
explicitly: ``intra_op_num_threads`` as asked, one inter-op thread (U²-Net is a chain,
there is nothing to run side by side), graph optimisation ALL.

A session may be ``run`` from several Python threads at once (ONNX Runtime allows it and
releases the GIL); with one intra-op thread each call then runs on its own core, which is
how two single-threaded streams share one copy of the weights.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from shared.errors import Unavailable

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (CUDA, CPU)


class DeviceUnavailable(Unavailable):
    """The asked-for device is not really in use (e.g. CUDA asked, CPU given)."""

    code = "device_unavailable"
    title = "The requested execution device is not available"
    transient = False


def choose_providers(device: str = "cpu", providers: list[str] | None = None) -> list[str]:
    """Providers to ask for: ``providers`` as given, else by ``device`` and what is installed.

    ``device="cpu"`` asks for CPU only (a CPU worker must not grab a GPU by accident);
    ``device="cuda"`` asks for CUDA then CPU, and :func:`create_session` checks that CUDA
    was really taken.
    """
    if providers:
        return list(providers)
    available = ort.get_available_providers()
    if device == "cuda":
        return [p for p in PREFERENCE if p in available]
    if device != "cpu":
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    return [CPU]


def create_session(
    path: Path | bytes,
    *,
    threads: int = 1,
    providers: list[str] | None = None,
    device: str = "cpu",
    config: dict[str, str] | None = None,
) -> ort.InferenceSession:
    """An inference session for the model file at ``path``; ``config``: session
    configuration entries (``SessionOptions.add_session_config_entry``).

    Raises DeviceUnavailable when ``device="cuda"`` and the CUDA provider is not among
    the session's active providers (missing onnxruntime-gpu, no driver, no GPU).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # quieter: ORT warns about every CUDA->CPU node placement otherwise
    options.log_severity_level = 3
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    wanted = choose_providers(device, providers)
    # bytes: a serialized model (worker.engine.batching.symbolic_batch)
    source = path if isinstance(path, bytes) else str(path)
    session = ort.InferenceSession(source, sess_options=options, providers=wanted)
    if device == "cuda" and CUDA not in session.get_providers():
        raise DeviceUnavailable(
            "CUDA was asked for but onnxruntime runs on "
            f"{', '.join(session.get_providers())} (installed: "
            f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu with a "
            "working CUDA driver, or set CUTOUT_DEVICE=cpu"
        )
    return session
