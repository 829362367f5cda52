"""The inference engine: model registry and fetching, ONNX sessions, rembg's pipeline.

Public API (others code against exactly these names)::

    from worker.engine import (
        Engine, Result, decode_image, ensure_model, fetch_models, MODEL_SPECS,
    )

Importing this package loads onnxruntime; only ``worker/`` and ``cutout`` commands that
process images import it.
"""

from worker.engine.engine import Engine, Result
from worker.engine.imageio import decode_image, encode_image
from worker.engine.models import MODEL_SPECS, ModelSpec, ensure_model, fetch_models
from worker.engine.session import DeviceUnavailable

__all__ = [
    "MODEL_SPECS",
    "DeviceUnavailable",
    "Engine",
    "ModelSpec",
    "Result",
    "decode_image",
    "encode_image",
    "ensure_model",
    "fetch_models",
]
