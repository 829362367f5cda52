"""Batched inference: a symbolic batch dimension, and a collector that groups calls.

The official U²-Net weights declare a fixed batch of 1. :func:`symbolic_batch` rewrites
the graph at load time so the first dimension of the input and of every output is the
``dim_param`` "batch" and drops ``value_info`` shape annotations that would pin it (the
Resize nodes take their sizes from ``Shape`` at run time, so nothing else assumes 1). On
CPU each image's output of a batch is then bit-identical to running it alone
(tests/integration/test_batched.py).

:class:`BatchCollector` lets several threads that each run one job meet at inference: the
first caller for a model waits up to ``max_wait`` seconds (or until ``size`` callers have
arrived), then runs one session call for all of them and hands each caller its own slice.
Decoding, resizing and encoding stay in the callers' threads, so they overlap the
inference of the other jobs. A job that fails before inference (a bad image) never joins a
batch; an inference error is raised in every caller of that batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("cutout.worker")

BATCH_DIM = "batch"


def symbolic_batch(path: Path) -> bytes:
    """The serialized model at ``path`` with a symbolic first dimension on its input and
    outputs (ONNX Runtime accepts the bytes in place of a file name)."""
    import onnx

    return symbolic_model(onnx.load(str(path)))


def symbolic_model(model: Any) -> bytes:
    """:func:`symbolic_batch` of a loaded ``onnx.ModelProto`` (changed in place)."""
    graph = model.graph
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM
    # inferred shapes of intermediate values would still say 1: let ORT infer them again
    del graph.value_info[:]
    return bytes(model.SerializeToString())


class _Pending:
    __slots__ = ("array", "done", "error", "output")

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.done = threading.Event()
        self.output: np.ndarray | None = None
        self.error: BaseException | None = None


class BatchCollector:
    """Groups concurrent inference calls per model into one call of up to ``size`` inputs.

    ``run(key, array, infer)``: ``array`` is one N×… input (usually N=1); ``infer`` maps a
    concatenated batch to the model output. Returns this caller's rows of the output.
    ``calls`` and ``batched_calls`` count session calls and those with more than one input.
    """

    def __init__(self, size: int, max_wait: float = 0.02) -> None:
        self.size = max(1, int(size))
        self.max_wait = max_wait
        self._lock = threading.Condition()
        self._waiting: dict[str, list[_Pending]] = {}
        self.calls = 0
        self.batched_calls = 0

    def run(
        self, key: str, array: np.ndarray, infer: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray:
        if self.size == 1:
            return infer(array)
        mine = _Pending(array)
        with self._lock:
            queue = self._waiting.setdefault(key, [])
            queue.append(mine)
            leader = len(queue) == 1
            if len(queue) >= self.size:
                self._lock.notify_all()
            if leader:
                deadline = time.monotonic() + self.max_wait
                while len(queue) < self.size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._lock.wait(left)
                group = queue[: self.size]
                rest = queue[self.size :]
                if rest:
                    self._waiting[key] = rest
                else:
                    del self._waiting[key]
        if leader:
            self._run_group(group, infer)
            if rest:
                # callers who arrived past a full batch: the first of them leads the next
                self._run_leftover(key, infer)
        mine.done.wait()
        if mine.error is not None:
            raise mine.error
        assert mine.output is not None
        return mine.output

    def _run_leftover(self, key: str, infer: Callable[[np.ndarray], np.ndarray]) -> None:
        while True:
            with self._lock:
                queue = self._waiting.pop(key, None)
            if not queue:
                return
            for start in range(0, len(queue), self.size):
                self._run_group(queue[start : start + self.size], infer)

    def _run_group(self, group: list[_Pending], infer: Callable[[np.ndarray], np.ndarray]) -> None:
        try:
            rows = [p.array.shape[0] for p in group]
            batch = group[0].array if len(group) == 1 else np.concatenate([p.array for p in group])
            output = infer(batch)
            with self._lock:
                self.calls += 1
                if len(group) > 1:
                    self.batched_calls += 1
            if len(group) > 1:
                log.info(
                    "batched inference",
                    extra={"batch": len(group), "batched_calls": self.batched_calls},
                )
            start = 0
            for pending, n in zip(group, rows, strict=True):
                pending.output = output[start : start + n]
                start += n
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            for pending in group:
                pending.error = exc
        finally:
            for pending in group:
                pending.done.set()
