"""Who may talk to a server without API keys, and who may see operational details.

Without keys (``cutout up`` on loopback, the README's default) the API's only protection
is that it listens on loopback. A web page the user visits can still reach it:

- **DNS rebinding**: a name the attacker controls first resolves to their server, then
  to 127.0.0.1; the page's scripts then read our answers as same-origin. The browser
  still sends the attacker's name in ``Host``, so a keyless server answers only requests
  whose ``Host`` is a loopback name (``localhost``, ``*.localhost``, ``127.0.0.1`` and
  the rest of 127/8, ``[::1]``; any port). Others get ``403 host_not_allowed``.
- **Cross-site requests** (CSRF): any page may POST a form or a ``fetch`` to
  ``http://127.0.0.1:8080/v1/jobs``; it cannot read the answer, but the job is made. A
  keyless server refuses every request with side effects (not GET, HEAD or OPTIONS) that
  a browser marks as coming from another site: ``Sec-Fetch-Site`` other than
  ``same-origin`` or ``none``, or an ``Origin`` other than the server's own. Clients
  that are not browsers (curl, ``cutout submit``) send neither header and pass.

With keys none of this applies: a browser never attaches a bearer key by itself. A
server started deliberately without keys on a public address (``CUTOUT_AUTH=off``) is
open to whoever reaches it, Host names included.
"""

from __future__ import annotations

from flask import request

from api.auth import is_loopback, parse_bearer
from shared.contract.settings import Settings
from shared.errors import CutoutError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCH = frozenset({"same-origin", "none"})


class HostNotAllowed(CutoutError):
    code = "host_not_allowed"
    status = 403
    title = "This server answers only loopback host names without API keys"


class CrossSiteRefused(CutoutError):
    code = "cross_site_request"
    status = 403
    title = "Requests with side effects from other sites are refused without API keys"


class ApiKeyRequired(CutoutError):
    code = "api_key_required"
    status = 403
    title = "This needs an API key"


def keyless_local(settings: Settings) -> bool:
    """True for a server without keys on a loopback address (the guarded mode)."""
    return not settings.auth_enabled and is_loopback(settings.host)


def host_name(host: str) -> str:
    """The name part of a ``Host`` header value (``[::1]:8080`` → ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""  # malformed: no name
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def loopback_host(host: str) -> bool:
    name = host_name(host).rstrip(".")
    return bool(name) and (name == "localhost" or name.endswith(".localhost") or is_loopback(name))


def check_request(settings: Settings) -> None:
    """before_request: the Host and cross-site rules above (keyless loopback only)."""
    if not keyless_local(settings):
        return
    host = request.headers.get("Host") or request.host
    if not loopback_host(host):
        raise HostNotAllowed(
            "without API keys this server answers only to localhost, 127.0.0.1 or [::1]; "
            "set CUTOUT_API_KEYS to serve other names"
        )
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in SAME_SITE_FETCH:
        raise CrossSiteRefused(f"the browser marked this request as {fetch_site}")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != f"{request.scheme}://{host}".lower():
        raise CrossSiteRefused("the request comes from a page of another origin")


def may_see_details(settings: Settings) -> bool:
    """Whether this caller may see operational details (worker hosts, pids, memory):
    one with a valid API key, or, on a server without keys, one on this machine."""
    if settings.auth_enabled:
        token = parse_bearer(request.headers.get("Authorization"))
        return token is not None and settings.tenant_for_key(token) is not None
    return is_loopback(request.remote_addr or "")


def require_key(settings: Settings, what: str) -> None:
    """ApiKeyRequired (403) on a server without keys: ``what`` is never handed out there."""
    if not settings.auth_enabled:
        raise ApiKeyRequired(
            f"{what} is only given to callers with an API key; set CUTOUT_API_KEYS "
            "(tenant:key pairs) and send Authorization: Bearer <key>"
        )
