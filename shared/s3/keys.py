"""The object storage key layout, in one place.

Keys are derived from the tenant and the job, so a retried task overwrites its own
output instead of leaving a second copy:

    inputs/<tenant>/<job>/source         the job's input (API upload or URL fetch)
    inputs/<tenant>/<job>/background     a /v1.0/removebg ``bg_image_file``
    outputs/<tenant>/<job>/result.<ext>  the job's result (version 1)
    outputs/<tenant>/<job>/result.<correction>.<ext>  a version made from a corrected mask
    inputs/<tenant>/<job>/masks/<correction>.png       that mask as the client sent it
    inputs/<tenant>/<job>/masks/<correction>.grey.png  it as stored: grey, the input's size
    uploads/<tenant>/<upload id>         a direct upload (POST /v1/uploads)
    models/<scope>/<name>/<sha256>.onnx  a registered custom model's file

Everything a job owns lies under :func:`job_prefixes`; a job's input may also be an
upload of its tenant (:func:`is_upload_of`).
"""

from __future__ import annotations

INPUTS = "inputs"
OUTPUTS = "outputs"
UPLOADS = "uploads"
MODELS = "models"


def input_key(tenant: str, job_id: str) -> str:
    return f"{INPUTS}/{tenant}/{job_id}/source"


def background_key(tenant: str, job_id: str) -> str:
    """Beside the job's input, so it is deleted with the job."""
    return f"{INPUTS}/{tenant}/{job_id}/background"


def output_key(tenant: str, job_id: str, extension: str) -> str:
    return f"{OUTPUTS}/{tenant}/{job_id}/result.{extension}"


def corrected_result_key(tenant: str, job_id: str, correction_id: str, extension: str) -> str:
    """The result a correction renders (its own key: a superseded run never overwrites
    another correction's result)."""
    return f"{OUTPUTS}/{tenant}/{job_id}/result.{correction_id}.{extension}"


def sent_mask_key(tenant: str, job_id: str, correction_id: str) -> str:
    """A correction's mask as the client sent it (read by the worker that renders it)."""
    return f"{INPUTS}/{tenant}/{job_id}/masks/{correction_id}.png"


def grey_mask_key(tenant: str, job_id: str, correction_id: str) -> str:
    """A correction's mask as the worker stores it: grey PNG, the input's size."""
    return f"{INPUTS}/{tenant}/{job_id}/masks/{correction_id}.grey.png"


def upload_key(tenant: str, upload_id: str) -> str:
    return f"{UPLOADS}/{tenant}/{upload_id}"


def upload_prefix(tenant: str) -> str:
    """The prefix of every upload of ``tenant``."""
    return f"{UPLOADS}/{tenant}/"


def job_prefixes(tenant: str, job_id: str) -> tuple[str, str]:
    """The prefixes under which a job's stored objects lie (input and output)."""
    return f"{INPUTS}/{tenant}/{job_id}/", f"{OUTPUTS}/{tenant}/{job_id}/"


def is_upload(key: str) -> bool:
    """Whether ``key`` is a direct upload (of any tenant)."""
    return key.startswith(f"{UPLOADS}/")


def is_upload_of(key: str, tenant: str) -> bool:
    """Whether ``key`` lies in ``tenant``'s uploads (no check for ``..``)."""
    return key.startswith(upload_prefix(tenant))


def is_input_of(key: str, tenant: str) -> bool:
    """Whether ``key`` lies in ``tenant``'s job inputs (no check for ``..``)."""
    return key.startswith(f"{INPUTS}/{tenant}/")


def model_file_key(scope: str, name: str, sha256: str) -> str:
    """A custom model's file; ``scope`` is ``global`` or ``tenant:<tenant>``."""
    return f"{MODELS}/{scope.replace(':', '/')}/{name}/{sha256}.onnx"
