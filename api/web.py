"""The web page at ``GET /``, its static files, and ``GET /v1/info`` that the page reads.

The page is plain HTML, CSS and JavaScript from ``api/static`` (no build step, nothing
from other hosts) and uses only the public API underneath. Its responses carry a strict
Content-Security-Policy: scripts and styles from this origin only (no inline code),
images from here and from ``blob:``/``data:`` URLs (the previews), and connections to
this origin plus the storage origin that signed upload URLs point at (the page PUTs the
image there once, so that "process again" reuses its ``upload_key``).

Caching: the page itself is ``no-cache`` (revalidated by ETag on every load) and names
its assets with a content hash (``/static/app.js?v=<hash>``); a request carrying the
current hash is cached for a year (``immutable``), anything else is revalidated. The
scripts are ES modules: a module's ``import ... from "./other.js"`` is served as
``"./other.js?v=<hash>"`` (that file's hash as served), so an imported module is cached
the same way and a change to it changes the hash of every module that imports it.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, request

from api.capabilities import fast_available
from api.openapi import doc
from api.services import current
from shared.contract.options import FORMATS
from shared.s3.keys import upload_key

bp = Blueprint("web", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSET_REF = re.compile(r'(?P<attr>(?:src|href)=")/static/(?P<name>[\w.-]+)"')
# a module's static import, re-export or dynamic import of a file beside it
IMPORT_REF = re.compile(
    r"""(?P<lead>\b(?:from|import)\s*\(?\s*)(?P<q>["'])\./(?P<name>[\w-][\w.-]*\.js)(?P=q)"""
)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _read(name: str) -> bytes | None:
    """A file directly in ``api/static`` (no sub-folders, no dot-files), else None."""
    if not re.fullmatch(r"[\w-][\w.-]*", name):
        return None
    path = STATIC_DIR / name
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def asset(name: str, importers: tuple[str, ...] = ()) -> bytes | None:
    """A static file as served: a script's imports of its neighbours carry their hashes
    (an import cycle leaves the reference back unversioned); None when there is no file."""
    data = _read(name)
    if data is None or not name.endswith(".js"):
        return data
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return data
    chain = (*importers, name)

    def versioned(match: re.Match[str]) -> str:
        target = match.group("name")
        served = None if target in chain else asset(target, chain)
        if served is None:
            return match.group(0)
        quote = match.group("q")
        return f"{match.group('lead')}{quote}./{target}?v={_digest(served)}{quote}"

    return IMPORT_REF.sub(versioned, text).encode()


@lru_cache(maxsize=32)
def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}"


def storage_origin() -> str | None:
    """The origin of the signed upload URLs (what the page PUTs to), computed locally."""
    services = current()
    try:
        # presigning is local arithmetic: no request leaves the process
        url = services.storage.presign_put(upload_key("_", "probe"), "application/octet-stream", 60)
    except Exception:  # noqa: BLE001 - no credentials yet: the configured endpoint, if any
        url = services.settings.s3_endpoint_url or ""
    return _origin(url)


def content_security_policy() -> str:
    connect = "'self'"
    origin = storage_origin()
    if origin:
        connect += f" {origin}"
    return "; ".join(
        [
            "default-src 'self'",
            "img-src 'self' blob: data:",
            f"connect-src {connect}",
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _send(data: bytes, content_type: str, cache_control: str) -> Response:
    response = Response(data, content_type=content_type)
    response.headers["Cache-Control"] = cache_control
    response.set_etag(_digest(data))
    response.make_conditional(request)
    return _secure(response)


def render_index() -> bytes:
    """index.html with each ``/static/<name>`` reference carrying its content hash."""
    page = _read("index.html")
    if page is None:
        abort(404)
    text = page.decode()

    def versioned(match: re.Match[str]) -> str:
        name = match.group("name")
        data = asset(name)
        suffix = f"?v={_digest(data)}" if data is not None else ""
        return f'{match.group("attr")}/static/{name}{suffix}"'

    return ASSET_REF.sub(versioned, text).encode()


@bp.get("/")
@doc(
    summary="The web page",
    description="Upload images, see the cutout over a checkerboard, change the model and "
    "options, process again without uploading again, download. Uses only the public API.",
    tags=["web"],
    responses={200: {"description": "the page", "content_type": "text/html"}},
)
def index() -> Response:
    return _send(render_index(), TYPES[".html"], REVALIDATE)


@bp.get("/static/<path:name>")
@doc(
    summary="The web page's scripts, styles and icons",
    description="With `?v=` equal to the file's content hash (as the page links it) the "
    "response may be cached for a year; otherwise it is revalidated by ETag.",
    tags=["web"],
    parameters=[{"name": "v", "in": "query", "required": False, "schema": {"type": "string"}}],
    responses={
        200: {
            "description": "the file",
            "content": {
                "text/javascript": {"type": "string"},
                "text/css": {"type": "string"},
                "image/svg+xml": None,
                "image/png": None,
            },
        },
        304: {"description": "not modified"},
        404: {"description": "not_found", "problem": True},
    },
)
def static_file(name: str) -> Response:
    data = asset(name) if name != "index.html" else None
    if data is None:
        abort(404)
    suffix = Path(name).suffix.lower()
    content_type = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    cache = IMMUTABLE if request.args.get("v") == _digest(data) else REVALIDATE
    return _send(data, content_type, cache)


@bp.get("/v1/info")
@doc(
    summary="What this server offers the page and clients",
    description="`auth` (whether API keys are required), the `models` this deployment "
    "serves, the output `formats`, `max_upload_bytes`, and `fast` (false when the live "
    "workers do not serve fast mode: a fast job would be refused), and `review_below` (the "
    "review threshold of the quality score, CUTOUT_REVIEW_BELOW). Like every `/v1/` path it "
    "needs the API key when keys are on, so a 401 here tells a client to ask for one.",
    tags=["web"],
    responses={
        200: {
            "description": "the server's facts",
            "schema": {
                "type": "object",
                "properties": {
                    "auth": {"type": "boolean"},
                    "models": {"type": "array", "items": {"type": "string"}},
                    "formats": {"type": "array", "items": {"type": "string"}},
                    "max_upload_bytes": {"type": "integer"},
                    "fast": {"type": "boolean"},
                    "review_below": {"type": "number"},
                },
            },
        }
    },
)
def info() -> Response:
    settings = current().settings
    body: dict[str, Any] = {
        "auth": settings.auth_enabled,
        "models": list(settings.models),
        "formats": list(FORMATS),
        "max_upload_bytes": settings.max_upload_bytes,
        # false: live workers exist and none serves fast mode (the page hides its box)
        "fast": fast_available(current()) is not False,
        # a succeeded job's result.quality.review: its score is below this (docs/quality.md)
        "review_below": settings.review_below,
    }
    response = Response(json.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response
