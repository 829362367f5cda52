"""One exception family for everything a client or operator can be told.

Every error carries a stable machine-readable ``code``, the HTTP ``status`` it maps to,
and a public ``message`` that is safe to show a client (no paths, no secrets). The API
renders these as RFC 9457 problem+json; the worker stores ``code`` and ``message`` on a
failed job.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://cutout.dev/problems/"
#: the longest public message: many quote the value they refuse (``got 'xxx…'``), and a
#: 100 kB option value used to come back whole in the answer, the job and the log
MESSAGE_MAX = 1000


class CutoutError(Exception):
    """Base class: a failure with a stable code and a public message."""

    code: str = "internal_error"
    status: int = 500
    title: str = "Internal error"
    #: transient errors are retried by tasks (storage or network hiccups)
    transient: bool = False

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        message = message or self.title
        if len(message) > MESSAGE_MAX:
            message = f"{message[:MESSAGE_MAX]}… ({len(message) - MESSAGE_MAX:,} more characters)"
        self.message = message
        self.extra = extra
        super().__init__(self.message)

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.message,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def to_job_error(self) -> dict[str, str]:
        """The ``error`` member of a failed job."""
        return {"code": self.code, "message": self.message}


class InvalidImage(CutoutError):
    code = "invalid_image"
    status = 422
    title = "The input is not a usable image"


class UnsupportedFormat(CutoutError):
    code = "unsupported_format"
    status = 415
    title = "The image format is not supported"


class ImageTooLarge(CutoutError):
    code = "image_too_large"
    status = 422
    title = "The image has too many pixels or is too wide or tall"


class PayloadTooLarge(CutoutError):
    code = "payload_too_large"
    status = 413
    title = "The request body is too large"


class InvalidOption(CutoutError):
    code = "invalid_option"
    status = 422
    title = "An option has an invalid value"


class InvalidRequest(CutoutError):
    code = "invalid_request"
    status = 400
    title = "The request is malformed"


class NotFound(CutoutError):
    code = "not_found"
    status = 404
    title = "Not found"


class Unauthorized(CutoutError):
    code = "unauthorized"
    status = 401
    title = "Missing or invalid API key"


class RateLimited(CutoutError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"


class QueueFull(CutoutError):
    code = "queue_full"
    status = 429
    title = "Too many queued jobs for this tenant"


class Conflict(CutoutError):
    code = "not_finished"
    status = 409
    title = "The job has not finished"


class IdempotencyMismatch(CutoutError):
    code = "idempotency_key_reused"
    status = 422
    title = "The Idempotency-Key was used with a different request"


class UrlNotAllowed(CutoutError):
    code = "url_not_allowed"
    status = 422
    title = "The URL points to an address that is not allowed"


class UrlFetchFailed(CutoutError):
    code = "url_fetch_failed"
    status = 422
    title = "The URL could not be fetched"


class UploadNotFound(CutoutError):
    code = "upload_not_found"
    status = 422
    title = "Nothing was uploaded under this upload_key"


class FastModeUnavailable(CutoutError):
    code = "fast_mode_unavailable"
    status = 422
    title = "Fast mode is not available on this installation"


class MethodNotAllowed(CutoutError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class Unavailable(CutoutError):
    code = "unavailable"
    status = 503
    title = "A backing service is unavailable"
    transient = True


class StorageError(CutoutError):
    code = "storage_error"
    status = 503
    title = "Object storage failed"
    transient = True


class ProcessingFailed(CutoutError):
    code = "processing_failed"
    status = 500
    title = "Processing failed repeatedly"


class ProcessingTimeout(CutoutError):
    code = "processing_timeout"
    status = 504
    title = "Processing did not finish in time"


class ModelUnavailable(CutoutError):
    code = "model_unavailable"
    status = 503
    title = "The model weights are not available"


# a custom model's run in the worker's sandbox (docs/security.md, "While it runs")
class InvalidModel(CutoutError):
    """A model file that cannot be served: refused at registration, or found unloadable
    by a worker (an operator of an unknown domain, weights kept in external data)."""

    code = "invalid_model"
    status = 422
    title = "The model cannot be served"


class ModelMemoryExceeded(CutoutError):
    """A custom model needed more memory than ``CUTOUT_CUSTOM_MODEL_MEMORY``."""

    code = "model_memory_exceeded"
    status = 422
    title = "The custom model needs more memory than a run may use"


class ModelFailed(CutoutError):
    """A custom model whose run failed, crashed its process, or gave another output than
    U²-Net's."""

    code = "model_failed"
    status = 422
    title = "The custom model failed while running"


# corrected masks (PUT /v1/jobs/{id}/mask, docs/api.md "Corrected masks")
class JobNotSucceeded(CutoutError):
    """A mask for a job that has no result to correct (queued, processing, failed,
    canceled)."""

    code = "job_not_succeeded"
    status = 409
    title = "Only a succeeded job's mask can be corrected"


class CorrectionPending(CutoutError):
    """A mask for a job whose previous correction is still being rendered."""

    code = "correction_pending"
    status = 409
    title = "The job's previous correction is still being rendered"


class MaskSizeMismatch(CutoutError):
    """A mask whose size is neither the input's, nor the input's shape at another
    scale, nor the model's own 320x320."""

    code = "mask_size_mismatch"
    status = 422
    title = "The mask's size does not fit the job's input"


def error_for_code(code: str, message: str | None = None) -> CutoutError:
    """Rebuild an error from a stored job's ``error.code`` (unknown codes stay 500)."""
    for cls in _all_subclasses(CutoutError):
        if cls.code == code:
            return cls(message)
    error = CutoutError(message)
    error.code = code
    return error


def _all_subclasses(cls: type[CutoutError]) -> list[type[CutoutError]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out
