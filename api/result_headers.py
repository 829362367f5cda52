"""The headers that describe a result beside its bytes: its quality score, and which of
an answer's headers a browser page may read.

Sent by every route that answers the image itself (``/api/remove``, ``/v1.0/removebg``,
``GET /v1/jobs/{id}/result``); docs/api.md lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response

#: ``result.quality`` as headers (docs/quality.md); absent for a job without a score
SCORE = "Cutout-Score"
REVIEW = "Cutout-Review"
FLAGS = "Cutout-Flags"
LEVEL = "Cutout-Score-Level"
QUALITY_HEADERS = (SCORE, REVIEW, FLAGS, LEVEL)

#: their OpenAPI description (the ``headers`` of a 200 in ``api.openapi.doc``)
QUALITY_DOC = {
    SCORE: "result.quality.score: 0-1, higher is more likely right (absent: no score)",
    REVIEW: "result.quality.review: `true` when the score is below CUTOUT_REVIEW_BELOW",
    FLAGS: "result.quality.flags: codes separated by spaces (empty when none)",
    LEVEL: "result.quality.level: `basic` or `full` (the `score` option)",
}


def quality_headers(result: Mapping[str, Any]) -> dict[str, str]:
    """``result.quality`` of a job's result as headers; none when it has no score."""
    quality = result.get("quality")
    if not isinstance(quality, Mapping):
        return {}
    return {
        SCORE: str(quality["score"]),
        REVIEW: "true" if quality.get("review") else "false",
        FLAGS: " ".join(quality.get("flags") or ()),
        LEVEL: str(quality.get("level") or ""),
    }


def expose(response: Response) -> Response:
    """List the answer's own headers in ``Access-Control-Expose-Headers``: a page of
    another origin that a deployment lets call the API (the API itself allows none:
    docs/security.md) may then read them, as the API's own page does."""
    names = [name for name, _ in response.headers.items() if name.startswith(("Cutout-", "X-"))]
    if names:
        response.headers["Access-Control-Expose-Headers"] = ", ".join(dict.fromkeys(names))
    return response
