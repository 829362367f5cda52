"""Bearer API keys → tenant, and the start-up refusal to serve the world without keys.

Every ``/v1/`` and ``/api/`` request needs ``Authorization: Bearer <key>`` when keys are
configured; keys are compared in constant time (``Settings.tenant_for_key``). Without
keys (``cutout up`` on loopback) every request belongs to the tenant ``public``.
Health, metrics and the OpenAPI document stay open: they hold no tenant data.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import g, request

from shared.contract.settings import Settings, SettingsError
from shared.errors import Unauthorized

log = logging.getLogger("cutout.api")

PUBLIC_TENANT = "public"
# /v1.0/: the remove.bg-compatible endpoint (api/removebg.py)
PROTECTED_PREFIXES = ("/v1/", "/api/", "/v1.0/")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class BindRefused(SettingsError):
    """The server would listen beyond loopback without API keys (or ``AUTH=on``, no keys)."""


BEARER_HOW = "'Authorization: Bearer <key>'"
#: remove.bg's clients send X-Api-Key: its route names the header they know
REMOVEBG_HOW = "'X-Api-Key: <key>' (or 'Authorization: Bearer <key>')"


def tenant_for_request(settings: Settings, header: str | None, how: str = BEARER_HOW) -> str:
    """The tenant of a request with this ``Authorization`` header; raises Unauthorized
    (``how``: the way to send a key that a keyless request is told)."""
    if not settings.auth_enabled:
        return PUBLIC_TENANT
    token = parse_bearer(header)
    if token is None:
        error = Unauthorized(f"send your API key as {how}")
        error.headers = {"WWW-Authenticate": 'Bearer realm="cutout"'}  # type: ignore[attr-defined]
        raise error
    tenant = settings.tenant_for_key(token)
    if tenant is None:
        error = Unauthorized("the API key is not valid")
        error.headers = {  # type: ignore[attr-defined]
            "WWW-Authenticate": 'Bearer realm="cutout", error="invalid_token"'
        }
        raise error
    return tenant


def authenticate(settings: Settings) -> None:
    """before_request hook: set ``g.tenant`` for protected paths (raises Unauthorized)."""
    if request.path.startswith(PROTECTED_PREFIXES):
        header = request.headers.get("Authorization")
        api_key = request.headers.get("X-Api-Key")
        if header is None and api_key is not None:
            # remove.bg's header: the same keys, the same tenants
            header = f"Bearer {api_key.strip()}"
        how = REMOVEBG_HOW if request.path.startswith("/v1.0/") else BEARER_HOW
        g.tenant = tenant_for_request(settings, header, how)


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to serve a non-loopback address without API keys (docs/security.md).

    Raises BindRefused (a SettingsError) naming the variables; with ``CUTOUT_AUTH=off``
    it only warns, at every start, because the operator chose an open server explicitly.
    """
    if settings.auth == "on" and not settings.api_keys:
        raise BindRefused(["CUTOUT_AUTH: is 'on' but CUTOUT_API_KEYS lists no keys"])
    if settings.auth_enabled or is_loopback(settings.host):
        return
    if settings.auth == "off":
        log.warning(
            "authentication is OFF (CUTOUT_AUTH=off) on %s: anyone who can reach this "
            "address can submit jobs and read every result",
            settings.host,
        )
        return
    raise BindRefused(
        [
            f"CUTOUT_API_KEYS: required when CUTOUT_HOST ({settings.host}) is not a loopback "
            "address; set tenant:key pairs, or CUTOUT_AUTH=off to serve without keys "
            "deliberately"
        ]
    )
