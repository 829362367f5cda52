"""The sandbox's runner: a process that loads and runs custom models under a memory cap.

Started by worker/engine/sandbox.py as ``python -m worker.engine.sandbox_runner CONFIG``
(a fresh interpreter, never a fork of the pool child and its ONNX Runtime threads). First
of all it caps its own address space (``RLIMIT_AS``) at ``CUTOUT_CUSTOM_MODEL_MEMORY``,
so that an allocation past the cap fails inside ONNX Runtime with an error ("Failed to
allocate memory") instead of growing the host's memory; then it reads requests on stdin
and answers on stdout, one at a time (worker/engine/sandbox_wire.py):

- first, unasked, ``{"ready": true}`` once its imports are done;
- ``{"key", "path"?, "shape", "expect"}`` + the input's float32 bytes: run the model
  whose file sha256 is ``key`` (loaded from ``path`` when it is not loaded yet) and
  answer ``{"ok": true, "shape"}`` + the first output's float32 bytes, or ``{"ok":
  false, "kind", "message"}`` with ``kind`` one of ``missing`` (not loaded and no path),
  ``memory`` (over the cap), ``invalid`` (cannot be loaded) and ``failed`` (the run
  failed, or gave an output other than ``expect``). Every answer lists the loaded keys.

It ignores SIGTERM and SIGINT (a stop of the worker reaches its whole process group: the
pool child decides what happens to the run) and dies with the pool child
(``PR_SET_PDEATHSIG``) or when its stdin closes. The wall-clock cap is the pool child's
to enforce: it kills the runner.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import resource
import signal
import sys
from typing import Any

from worker.engine import sandbox_wire as wire

PR_SET_PDEATHSIG = 1
SAME_AS_REQUESTED = 1  # ONNX Runtime's ArenaExtendStrategy::kSameAsRequested
#: ONNX Runtime's and numpy's words for an allocation that failed, or that ONNX Runtime
#: refused before trying (a Tile output over 4 GiB: "would require more than N bytes")
_MEMORY = re.compile(
    r"Failed to allocate memory|bad_alloc|Unable to allocate|Cannot allocate"
    r"|would require more than \d+ bytes"
)
# ONNX Runtime's source paths in its messages (…/onnxruntime/core/x.cc:360 void* f(…))
_SOURCE = re.compile(r"/\S*onnxruntime\S*\.(?:cc|h|cpp|cu):\d+ [^\n]*?\) ")
_STATUS = re.compile(r"^\d+ : [A-Z_]+ : ")
_SIZE = re.compile(r"buffer of size (\d+)")


def _guard(parent: int, memory: int) -> None:
    """Die with the pool child, ignore stop signals, no core files, cap the memory."""
    # not Linux: the end of stdin still stops the runner (between requests)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the pool child died before the line above
        os._exit(1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _write(fd: int, parts: list[bytes | memoryview]) -> None:
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(fd, view) :]


def public_message(exc: BaseException) -> str:
    """ONNX Runtime's message without its source paths, on one line, at most 300 chars."""
    text = _SOURCE.sub("", str(exc)).replace("[ONNXRuntimeError] : ", "")
    text = _STATUS.sub("", text)  # "1 : FAIL : "
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def classify(exc: BaseException, phase: str) -> dict[str, Any]:
    """The answer for an exception of loading (``invalid``) or running (``failed``)."""
    from google.protobuf.message import EncodeError

    message = public_message(exc)
    # protobuf fails to serialize a model it has just parsed only when it cannot allocate
    if isinstance(exc, MemoryError | EncodeError) or _MEMORY.search(str(exc)):
        found = _SIZE.search(str(exc))
        asked = int(found.group(1)) if found else None
        return {"ok": False, "kind": "memory", "asked": asked, "message": message}
    return {"ok": False, "kind": "invalid" if phase == "load" else "failed", "message": message}


def external_tensors(graph: Any) -> list[str]:
    """Names of the tensors of ``graph`` and its subgraphs stored outside the file."""
    from onnx import AttributeProto, TensorProto

    tensors = [*graph.initializer, *(s.values for s in graph.sparse_initializer)]
    graphs = []
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                tensors.append(attr.t)
            tensors.extend(attr.tensors)
            if attr.type == AttributeProto.GRAPH:
                graphs.append(attr.g)
            graphs.extend(attr.graphs)
    found = [t.name for t in tensors if t.data_location == TensorProto.EXTERNAL]
    for sub in graphs:
        found.extend(external_tensors(sub))
    return found


class Runner:
    """The loaded sessions (least recently used dropped) and the requests on them."""

    def __init__(self, threads: int, sessions: int) -> None:
        import onnxruntime as ort

        from worker.engine.custom import LRU

        self.threads = threads
        self.sessions: LRU[Any] = LRU(sessions)
        self.quiet = ort.RunOptions()
        self.quiet.log_severity_level = 4  # the pool child logs the outcome, once
        # One CPU arena for the runner's sessions that grows by what is asked, not to the
        # next power of two: under the address-space cap a doubling that fits can leave
        # no room for the rest (a model that ran under a 2 GiB cap failed under 2.4 GiB).
        cpu = ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        )
        ort.create_and_register_allocator(cpu, ort.OrtArenaCfg(0, SAME_AS_REQUESTED, -1, -1))

    def load(self, path: str) -> Any:
        import onnx

        from worker.engine.batching import symbolic_model
        from worker.engine.session import create_session

        model = onnx.load(path, load_external_data=False)
        outside = external_tensors(model.graph)
        if outside:
            raise ValueError(
                f"the model keeps {len(outside)} tensor(s) outside its file (external data, "
                f"e.g. {outside[0]!r}): only self-contained models are served"
            )
        data = symbolic_model(model)
        del model  # one copy of the weights less while ONNX Runtime reads them
        # CPU only: a cap on the address space cannot bound a GPU's memory
        return create_session(
            data,
            threads=self.threads,
            providers=["CPUExecutionProvider"],
            config={"session.use_env_allocators": "1"},
        )

    def handle(self, request: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        import numpy as np

        key = str(request["key"])
        session = self.sessions.get(key)
        if session is None:
            if not request.get("path"):
                return {"ok": False, "kind": "missing"}, b""
            try:
                session = self.load(str(request["path"]))
            except Exception as exc:  # noqa: BLE001 - every reason is the model's: answered
                return classify(exc, "load"), b""
            self.sessions.put(key, session)
        batch = np.frombuffer(payload, dtype=np.float32).reshape(request["shape"])
        try:
            inputs = {session.get_inputs()[0].name: batch}
            output = session.run([session.get_outputs()[0].name], inputs, self.quiet)[0]
        except Exception as exc:  # noqa: BLE001
            return classify(exc, "run"), b""
        expect = tuple(request["expect"])
        if output.dtype != np.float32 or output.shape != expect:
            return {
                "ok": False,
                "kind": "failed",
                "message": f"its first output is {output.dtype} {tuple(output.shape)}, not "
                f"float32 {expect}",
            }, b""
        return {"ok": True, "shape": list(output.shape)}, np.ascontiguousarray(output).tobytes()


def serve(config: dict[str, Any]) -> int:
    # the protocol gets stdout's descriptor; anything else printing to stdout goes to stderr
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    runner = Runner(int(config["threads"]), int(config["sessions"]))
    # imported now, so that the time cap measures loading and running, not our imports
    import onnx  # noqa: F401

    import worker.engine.batching
    import worker.engine.session  # noqa: F401

    _write(reply_fd, wire.frame({"ready": True}))
    while True:
        head = _read_exact(0, wire.HEAD.size)
        if head is None:
            return 0  # the pool child closed our stdin: done
        meta_size, payload_size = wire.sizes(head, int(config["max_payload"]))
        request = wire.header(_read_exact(0, meta_size) or b"")
        payload = _read_exact(0, payload_size) if payload_size else b""
        try:
            answer, data = runner.handle(request, payload or b"")
        except MemoryError as exc:  # outside ONNX Runtime (numpy, onnx): over the cap too
            answer, data = classify(exc, "run"), b""
        answer["loaded"] = runner.sessions.keys()
        _write(reply_fd, wire.frame(answer, data))


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    _guard(int(config["parent"]), int(config["memory"]))
    return serve(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
