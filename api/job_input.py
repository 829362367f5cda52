"""``GET /v1/jobs/{id}/input``: the photo a job was made from, for its owner.

The web page's editor draws a corrected mask over the original photo; a job of a batch
has no copy of it in the browser, so the page reads it here with the API key it already
uses. Tenant-scoped like every job route (another tenant's job is ``404``). The bytes
are the stored input as received (an API upload, a direct upload, or a URL's image once
the worker stored it); a job whose input is no longer stored (deleted, expired, or a URL
job whose image was never stored) answers ``404``.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response

from api.jobs import load_job, services
from api.openapi import doc
from shared.contract.shapes.records import JobRecord
from shared.errors import NotFound
from shared.s3 import keys

bp = Blueprint("job_input", __name__, url_prefix="/v1/jobs")


def stored_input(job: JobRecord) -> str | None:
    """The storage key of the job's input: its recorded key, else the job's own slot."""
    if job.input_key:
        return job.input_key
    return keys.input_key(job.tenant, job.id) if job.tenant else None


SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff(head: bytes) -> str:
    """An image's media type from its first bytes; anything else is a download."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for magic, media_type in SIGNATURES:
        if head.startswith(magic):
            return media_type
    return "application/octet-stream"


@bp.get("/<job_id>/input")
@doc(
    summary="The job's input image",
    description="The photo the job was made from, as stored (the web page's editor draws "
    "a corrected mask over it). Only the job's own tenant gets it; 404 `not_found` when "
    "the job is unknown or the input is no longer stored (deleted with the job, expired, "
    "or a URL job whose image was not kept).",
    tags=["jobs"],
    responses={
        200: {"description": "the input image, as uploaded", "content": {"image/*": None}},
        404: {"description": "not_found", "problem": True},
    },
)
def get_input(job_id: str) -> Response:
    job = load_job(job_id)
    key = stored_input(job)
    if key is None:
        raise NotFound("this job's input is not stored")
    storage = services().storage
    try:
        head = storage.head(key)
    except NotFound:
        raise NotFound("this job's input is no longer stored") from None
    chunks = storage.stream(key)
    first = next(chunks, b"")

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    # the type is read from the bytes, never the stored label: a script could have set
    # that label on a direct upload, and this answer comes from the page's own origin
    response = Response(body(), mimetype=sniff(first))
    response.headers["Content-Length"] = str(head["bytes"])
    response.headers["Content-Disposition"] = f'inline; filename="{job_id}-input"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
