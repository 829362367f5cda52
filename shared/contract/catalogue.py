"""Which storage keys a job may name as its background (``bg_upload_key``, and the
``bg_image_file`` that ``/v1.0/removebg`` keeps): checked at intake and again by the
worker. The options' values themselves are parsed in ``shared/contract/optionvalues.py``.
"""

from __future__ import annotations

from shared.s3.keys import is_input_of, is_upload_of


def plain_key(key: str) -> bool:
    """No ``..`` and printable ASCII only, as every key the service issues: a lone
    surrogate cannot even be encoded for the storage client."""
    return key.isascii() and key.isprintable() and ".." not in key


def background_key_allowed(key: str, tenant: str) -> bool:
    """Whether ``key`` lies in ``tenant``'s uploads (``POST /v1/uploads``) or inputs
    (where ``/v1.0/removebg`` keeps a ``bg_image_file``); another's reads as missing."""
    return (is_upload_of(key, tenant) or is_input_of(key, tenant)) and plain_key(key)
