"""Every API shape, defined once: stored records, public JSON, request bodies, schemas.

See ``records`` (Job, Batch, Webhook, results; the Redis codec and the public JSON),
``requests`` (request bodies), ``openapi`` (component schemas) and ``markdown`` (the
field tables of docs/api.md).
"""

from shared.shapes.records import (
    INT_FIELDS,
    JSON_FIELDS,
    STATUSES,
    TERMINAL,
    Batch,
    Job,
    Webhook,
    decode,
    encode,
    public_batch,
    public_job,
)

__all__ = [
    "INT_FIELDS",
    "JSON_FIELDS",
    "STATUSES",
    "TERMINAL",
    "Batch",
    "Job",
    "Webhook",
    "decode",
    "encode",
    "public_batch",
    "public_job",
]
