"""Whose job is being served: custom models resolve per tenant (worker/engine/custom.py).

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


@contextlib.contextmanager
def serving_tenant(tenant: str | None) -> Iterator[None]:
    token = SERVING_TENANT.set(tenant)
    try:
        yield
    finally:
        SERVING_TENANT.reset(token)
