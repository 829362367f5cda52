"""Whose job is being served: custom models resolve per tenant (worker/engine/custom.py),
and the sha256 of the custom model the job was submitted with (its pinned version).

Kept apart from the engine so that worker/tasks.py can set it without importing
onnxruntime at module load.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

SERVING_TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "serving_tenant", default=None
)

SERVING_MODEL_SHA256: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "serving_model_sha256", default=None
)


@contextlib.contextmanager
def serving_tenant(tenant: str | None, model_sha256: str | None = None) -> Iterator[None]:
    token = SERVING_TENANT.set(tenant)
    pin = SERVING_MODEL_SHA256.set(model_sha256)
    try:
        yield
    finally:
        SERVING_MODEL_SHA256.reset(pin)
        SERVING_TENANT.reset(token)
