"""Every API shape, defined once: stored records, public JSON, request bodies, schemas.

See ``records`` (Job, Batch, Webhook, results; the stored JobRecord and BatchRecord the
stores return, their Redis codec and the public JSON), ``requests`` (JSON request bodies,
read with ``model_validate``), ``forms`` (multipart bodies), ``jsontext`` (bounded client
JSON), ``openapi`` (component schemas) and ``markdown`` (the field tables of docs/api.md).
"""

from shared.contract.shapes.records import (
    INT_FIELDS,
    JSON_FIELDS,
    STATUSES,
    TERMINAL,
    Batch,
    BatchRecord,
    Job,
    JobRecord,
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
    "BatchRecord",
    "Job",
    "JobRecord",
    "Webhook",
    "decode",
    "encode",
    "public_batch",
    "public_job",
]
