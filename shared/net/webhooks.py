"""Webhook events, signed by the Standard Webhooks scheme, and their delivery.

A delivery is one ``POST`` of the event body with the headers ``webhook-id`` (the same
on every retry of one event), ``webhook-timestamp`` (seconds, fresh on every attempt so
receivers' replay windows accept retries) and ``webhook-signature``: ``v1,`` + base64
HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``, keyed with the base64-decoded part of
the tenant's ``whsec_…`` secret. Receivers verify it with any Standard Webhooks library.

Delivery goes through :mod:`shared.net.guard`, so a webhook URL cannot reach our own
network either. Retries and their schedule belong to the caller (the worker's task); each
tenant's secret is kept in Redis by :class:`shared.stores.webhooksecrets.WebhookSecrets`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import CutoutError, UrlNotAllowed
from shared.ids import new_id
from shared.net.address import IPNetwork
from shared.net.guard import fetch

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix of every secret, not a secret
SECRET_BYTES = 24
EVENT_TYPES = frozenset({"job.succeeded", "job.failed", "job.corrected", "batch.completed"})
USER_AGENT = "Cutout-Webhooks/0.1"
#: a receiver's answer is not needed; read at most this much of it
_MAX_ANSWER_BYTES = 64 * 1024


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of id.timestamp.body.

    Raises ValueError if ``secret`` is not ``whsec_`` + base64.
    """
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers for one delivery attempt of ``body``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def new_message_id() -> str:
    """``msg_`` + 26 base32 characters, time-ordered; one per event, kept across retries."""
    return new_id("msg")


def event_body(type: str, data: dict[str, Any], *, now: datetime | None = None) -> bytes:
    """The JSON body ``{"type", "timestamp", "data"}`` of an event, compact, UTF-8.

    Raises ValueError for an unknown event type (docs/api.md lists them).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    document = {"type": type, "timestamp": stamp, "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one delivery attempt came to.

    ``ok`` for any 2xx answer. ``status`` is the receiver's answer (None when there was
    none); ``error`` a short public reason when not ok. ``retryable`` is False when
    trying again cannot help (the URL is refused), so the caller may stop early.
    """

    ok: bool
    status: int | None
    error: str | None
    retryable: bool = True


def deliver(
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    *,
    timeout: float,
    allowed_networks: Iterable[IPNetwork] = (),
    timestamp: int | None = None,
) -> DeliveryOutcome:
    """POST ``body`` to ``url`` signed with ``secret``; never raises for network trouble.

    ``timeout`` bounds the whole attempt (connect, send, answer). Redirects are not
    followed: a 3xx is not delivered (the signed body is not re-sent to another place).
    """
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    send = headers(secret, msg_id, stamp, body)
    send["user-agent"] = USER_AGENT
    try:
        result = fetch(
            url,
            max_bytes=_MAX_ANSWER_BYTES,
            allowed_networks=allowed_networks,
            timeout=(timeout, timeout),
            total_timeout=timeout,
            method="POST",
            body=body,
            headers=send,
            truncate_body=True,  # a long answer does not undo a 2xx
        )
    except UrlNotAllowed as exc:
        return DeliveryOutcome(False, None, exc.message, retryable=False)
    except CutoutError as exc:  # unreachable, timed out, TLS refused
        return DeliveryOutcome(False, None, exc.message)
    if 200 <= result.status < 300:
        return DeliveryOutcome(True, result.status, None, retryable=False)
    return DeliveryOutcome(False, result.status, f"the receiver answered {result.status}")
