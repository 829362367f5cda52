"""Which version of a job's result ``GET /v1/jobs/{id}/result?version=N`` serves: the
newest by default; an earlier one (kept until the job expires) by its number. Versions
after 1 come from corrected masks (api/corrections.py, docs/api.md "Corrected masks")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.contract.shapes.records import JobRecord
from shared.errors import InvalidRequest, NotFound

#: the ``version`` query parameter, for the views that take it
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": "version",
    "in": "query",
    "required": False,
    "description": "a result version (1: the model's; each corrected mask makes the next; "
    "default: the newest, `result.version`); 404 `not_found` for one the job never had",
    "schema": {"type": "integer", "minimum": 1},
}


def newest_version(result: Mapping[str, Any]) -> int:
    return int(result.get("version") or 1)


def result_version(job: JobRecord, raw: str | None) -> dict[str, Any]:
    """The stored result of version ``raw`` of a succeeded ``job`` (the newest when
    ``raw`` is None or empty). Raises InvalidRequest (not a whole number from 1) and
    NotFound (a version the job does not have)."""
    result = dict(job.result or {})
    if raw is None or raw == "":
        return result
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise InvalidRequest("`version` must be a whole number from 1", field="version")
    wanted, newest = int(raw), newest_version(result)
    if wanted == newest:
        return result
    for older in job.versions or ():
        if isinstance(older, Mapping) and newest_version(older) == wanted:
            return dict(older)
    raise NotFound(
        f"this job has no result version {wanted} (it has 1 to {newest})", field="version"
    )
