"""``/v1/webhooks/secret``: the tenant's Standard Webhooks signing secret, and its rotation.

Deliveries (worker/webhooks.py) are signed with the secret current at each attempt, so
after a rotation the retries of earlier events carry the new signature.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, g

from api import trust
from api.openapi import doc
from api.services import current
from shared.stores.webhooksecrets import WebhookSecrets

bp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks")

SECRET_SCHEMA = {
    "type": "object",
    "required": ["secret"],
    "properties": {"secret": {"type": "string", "pattern": "^whsec_"}},
}


def _secrets() -> WebhookSecrets:
    return current().webhook_secrets


def _answer(secret: str) -> Response:
    response = Response(json.dumps({"secret": secret}), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/secret")
@doc(
    summary="The webhook signing secret",
    description="`whsec_…` (made on first use). Verify deliveries with any Standard "
    "Webhooks library: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`.",
    tags=["webhooks"],
    responses={
        200: {"description": "the secret", "schema": SECRET_SCHEMA},
        403: {"description": "api_key_required (a server without API keys)", "problem": True},
    },
)
def get_secret() -> Response:
    # without keys anyone who reaches the server could read it: never handed out then
    trust.require_key(current().settings, "the webhook secret")
    return _answer(_secrets().get_or_create(g.tenant))


@bp.post("/secret/rotate")
@doc(
    summary="Replace the webhook signing secret",
    description="The old secret stops at once: deliveries from now on, retries of earlier "
    "events included, are signed with the new one.",
    tags=["webhooks"],
    responses={
        200: {"description": "the new secret", "schema": SECRET_SCHEMA},
        403: {"description": "api_key_required (a server without API keys)", "problem": True},
    },
)
def rotate_secret() -> Response:
    trust.require_key(current().settings, "the webhook secret")
    return _answer(_secrets().rotate(g.tenant))
