"""The inference engine: model registry and fetching, ONNX sessions, the render path.

The names below are the ones most callers start from (the worker's context and start-up,
``cutout remove``, ``cutout eval``, ``cutout up``): the :class:`Engine` and what is
needed before there is one (weights, decoding, the CUDA check). They are a convenience,
not a boundary: everything else (``quality``, ``fast``, ``custom``, ``render``, ...) is
imported from the module that defines it, and docs/architecture.md ("The engine") says
which module does what.

Importing any module of this package runs this file, so it loads onnxruntime; the API
never imports the engine.
"""

from worker.engine.engine import Engine
from worker.engine.imageio import decode_image
from worker.engine.models import ensure_model, fetch_models
from worker.engine.session import DeviceUnavailable

__all__ = ["DeviceUnavailable", "Engine", "decode_image", "ensure_model", "fetch_models"]
