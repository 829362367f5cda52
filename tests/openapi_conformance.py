"""A pytest plugin: every response of our API that a test receives must match /openapi.json.

It wraps the two HTTP clients the tests use against the API: Flask's test client
(``FlaskClient.open``) and ``urllib.request.urlopen`` (live ``cutout api`` processes).
Each response to a documented operation (path template and method of the document) is
checked: its status must be documented (or fall under ``default``), its content type
must be one the document describes for that status (when it describes any), and a JSON
body must validate against that schema (JSON Schema 2020-12, the document's components
resolvable). Binary bodies (images, zips) are checked for their content type only, and
a status the document describes without content is not looked into (remove.bg's and
rembg's compatible endpoints document only what they promise).

A response that does not conform fails the test that received it, after the test body
ran (also when the request came from a thread). The document is the one the app serves:
``build_document(app)`` for a test client's app, ``GET /openapi.json`` for a live server.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

#: paths whose answers come from our API (a live server's other URLs: S3, test servers)
API_PATHS = ("/v1/", "/v1.0/", "/api/", "/healthz", "/readyz", "/openapi.json")

_violations: list[str] = []
_checked = [0]  # responses of documented operations checked, for the session's summary
_lock = threading.Lock()
_documents: dict[Any, dict[str, Any] | None] = {}
_operations: dict[int, list[tuple[re.Pattern[str], str, dict[str, Any]]]] = {}


def _json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _operations_of(document: dict[str, Any]) -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    """(path regex, path template, path item), literal paths before templated ones."""
    key = id(document)
    if key not in _operations:
        found = []
        for template, item in document.get("paths", {}).items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            found.append((re.compile(pattern), template, item))
        found.sort(key=lambda entry: entry[1].count("{"))
        _operations[key] = found
    return _operations[key]


def violations(
    document: dict[str, Any],
    method: str,
    path: str,
    status: int,
    content_type: str,
    body: bytes,
) -> list[str]:
    """Why one response does not conform to ``document`` (empty when it does, or when it
    answers no documented operation)."""
    operation = None
    for pattern, _template, item in _operations_of(document):
        if pattern.match(path) and method.lower() in item:
            operation = item[method.lower()]
            break
    if operation is None:
        return []
    _checked[0] += 1
    where = f"{method.upper()} {path} → {status}"
    responses = operation.get("responses", {})
    spec = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    spec = spec or responses.get("default")
    if spec is None:
        return [f"{where}: the status is not documented"]
    content = spec.get("content")
    if not content:
        return []
    media_type = content_type.split(";")[0].strip().lower()
    media = content.get(media_type)
    if media is None:
        for declared, candidate in content.items():
            if declared.endswith("/*") and media_type.startswith(declared[:-1]):
                media = candidate
                break
    if media is None:
        return [f"{where}: answered {media_type or 'no content type'}, documented {list(content)}"]
    schema = media.get("schema")
    if not _json_type(media_type) or not schema:
        return []
    try:
        value = json.loads(body)
    except ValueError:
        return [f"{where}: the {media_type} body is not JSON: {body[:200]!r}"]
    root = {"components": document.get("components", {}), **schema}
    errors = sorted(Draft202012Validator(root).iter_errors(value), key=lambda e: list(e.path))
    return [
        f"{where}: {'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in errors[:5]
    ]


def _record(found: list[str]) -> None:
    if found:
        with _lock:
            _violations.extend(found)


@contextlib.contextmanager
def caught() -> Iterator[list[str]]:
    """Take the violations recorded inside the block (they then fail no test): for tests
    of this plugin itself."""
    with _lock:
        start = len(_violations)
    taken: list[str] = []
    try:
        yield taken
    finally:
        with _lock:
            taken.extend(_violations[start:])
            del _violations[start:]


# -- Flask's test client -------------------------------------------------------------------


def _app_document(app: Any) -> dict[str, Any] | None:
    if app not in _documents:
        from api.openapi import build_document

        try:
            with app.app_context():
                # what GET /openapi.json serves, without a request the test would see
                _documents[app] = json.loads(json.dumps(build_document(app)))
        except Exception:  # not our app (a test's own Flask app)
            _documents[app] = None
    return _documents[app]


_flask_open = FlaskClient.open


def _checked_open(self: FlaskClient, *args: Any, **kwargs: Any) -> Any:
    response = _flask_open(self, *args, **kwargs)
    with contextlib.suppress(Exception):
        _check_flask(self, response)
    return response


def _check_flask(client: FlaskClient, response: Any) -> None:
    request = response.request
    document = _app_document(client.application)
    if document is None or request is None:
        return
    mimetype = response.mimetype or ""
    body = response.get_data() if _json_type(mimetype) else b""
    _record(
        violations(document, request.method, request.path, response.status_code, mimetype, body)
    )


# -- urllib (live servers) ---------------------------------------------------------------------

_urlopen = urllib.request.urlopen


def _server_document(base: str) -> dict[str, Any] | None:
    if base not in _documents:
        document = None
        with contextlib.suppress(Exception):
            with _urlopen(base + "/openapi.json", timeout=30) as response:
                candidate = json.loads(response.read())
            if candidate.get("info", {}).get("title") == "Cutout":
                document = candidate
        _documents[base] = document
    return _documents[base]


def _checked_urlopen(url: Any, *args: Any, **kwargs: Any) -> Any:
    request = url if isinstance(url, urllib.request.Request) else urllib.request.Request(url)
    parts = urllib.parse.urlsplit(request.full_url)
    ours = parts.scheme in ("http", "https") and parts.path.startswith(API_PATHS)
    try:
        response = _urlopen(url, *args, **kwargs)
    except urllib.error.HTTPError as exc:
        data = _check_live(request, parts, exc.code, exc.headers, exc) if ours else None
        if data is not None:
            exc.fp = exc.file = io.BytesIO(data)
            exc.__dict__.pop("read", None)  # tempfile's wrapper caches the bound method
        raise
    data = (
        _check_live(request, parts, response.status, response.headers, response) if ours else None
    )
    if data is not None:
        response.read = io.BytesIO(data).read  # the test reads the same bytes
    return response


def _check_live(
    request: urllib.request.Request, parts: Any, status: int, headers: Any, stream: Any
) -> bytes | None:
    """Check one live response; returns the JSON body it read (None: left unread, the
    test streams it itself)."""
    content_type = headers.get("Content-Type") or ""
    data = stream.read() if _json_type(content_type.split(";")[0].strip().lower()) else None
    with contextlib.suppress(Exception):
        document = _server_document(f"{parts.scheme}://{parts.netloc}")
        if document is not None:
            method, path = request.get_method(), parts.path
            _record(violations(document, method, path, status, content_type, data or b""))
    return data


# -- pytest hooks ---------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    FlaskClient.open = _checked_open  # type: ignore[method-assign]
    urllib.request.urlopen = _checked_urlopen


def pytest_unconfigure(config: pytest.Config) -> None:
    FlaskClient.open = _flask_open  # type: ignore[method-assign]
    urllib.request.urlopen = _urlopen


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _checked[0]:
        terminalreporter.write_line(f"openapi conformance: {_checked[0]} API responses checked")


def pytest_runtest_setup(item: pytest.Item) -> None:
    with _lock:
        _violations.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    with _lock:
        found = list(_violations)
        _violations.clear()
    if found:
        raise AssertionError(
            "responses that do not conform to /openapi.json:\n  " + "\n  ".join(found)
        )
    return result
