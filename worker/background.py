"""The bytes of a job's background image (``bg_image_url`` / ``bg_upload_key``).

A URL is fetched through the same SSRF guard and byte limit as ``image_url``
(``shared.net.guard``); an upload key must lie in the job's tenant's upload area, exactly
as the API checks it, and is read with the same byte limit. The engine then decodes the
bytes under the input pixel limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.contract.catalogue import background_key_allowed
from shared.contract.options import Options
from shared.errors import NotFound, UploadNotFound
from shared.net.guard import fetch

if TYPE_CHECKING:
    from worker.context import WorkerContext


def read_background(ctx: WorkerContext, tenant: str, options: Options) -> bytes | None:
    """The background's bytes, or None when the options name none.

    Raises UrlNotAllowed / UrlFetchFailed / PayloadTooLarge (URL), UploadNotFound (key
    of another tenant, or nothing there), StorageError (transient).
    """
    limit = ctx.settings.max_upload_bytes
    if options.bg_image_url:
        return fetch(
            options.bg_image_url,
            max_bytes=limit,
            allowed_networks=ctx.settings.allowed_private_networks,
        ).body
    if options.bg_upload_key:
        key = options.bg_upload_key
        if not background_key_allowed(key, tenant):
            raise UploadNotFound("nothing was uploaded under bg_upload_key", field="bg_upload_key")
        try:
            return ctx.storage.get(key, max_bytes=limit)
        except NotFound:
            raise UploadNotFound(
                "nothing was uploaded under bg_upload_key (or it expired)", field="bg_upload_key"
            ) from None
    return None
