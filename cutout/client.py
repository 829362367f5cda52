"""A small HTTP client for Cutout's API (standard library only), used by ``cutout submit``.

Connections are kept alive, one per thread and origin (``http.client``), because a bulk
client makes thousands of small requests to the same two hosts (the API and, through
signed URLs, the storage). Transient trouble is retried with growing delays: connection
errors, ``429`` and ``503`` (honouring ``Retry-After``), ``502``/``504``, and ``409
idempotency_in_progress``. Callers retry only requests that are safe to repeat: GETs,
PUTs to signed URLs, ``POST /v1/uploads`` (a repeat only wastes a slot), and ``POST
/v1/batches`` with an ``Idempotency-Key``.

Errors: :class:`ApiError` for an answer the API refused (with the problem's ``code``),
:class:`TransportError` when the server could not be reached after the retries.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutout import __version__
from shared.atomicfile import atomic_file  # standard library only, like this module

USER_AGENT = f"cutout-submit/{__version__}"
RETRY_STATUSES = {429, 502, 503, 504}
CHUNK = 1 << 16


class ClientError(Exception):
    """Anything this client reports; ``code`` is machine-readable."""

    code = "client_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class TransportError(ClientError):
    """The server could not be reached, or kept answering with a transient error."""

    code = "unreachable"


class ServiceUnreachable(ClientError):
    """Nothing listens at the API's address (refused, unknown host, no route)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "unreachable")


class ApiError(ClientError):
    """An HTTP error answer; ``problem`` is its problem+json body when it had one."""

    def __init__(self, status: int, problem: Mapping[str, Any] | None, text: str = "") -> None:
        self.status = status
        self.problem = dict(problem or {})
        code = str(self.problem.get("code") or f"http_{status}")
        message = str(self.problem.get("detail") or self.problem.get("title") or text or "")
        super().__init__(f"HTTP {status} {code}: {message}".rstrip(": "), code)
        self.detail = message


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    """Keep-alive HTTP/1.1 connections, one per (thread, origin), with retries."""

    def __init__(self, timeout: float = 60.0, retries: int = 6, backoff: float = 0.5) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._local = threading.local()

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "pool", {}
        )
        conn = pool.get((scheme, netloc))
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(netloc, timeout=self.timeout)
            pool[(scheme, netloc)] = conn
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        pool = self._local.__dict__.get("pool", {})
        conn = pool.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._local.__dict__.pop("pool", {}).values():
            conn.close()

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        sink: Path | None = None,
    ) -> Response:
        """One request with retries; with ``sink`` a 200 body is written there atomically.

        Returns any final answer (also 4xx/5xx: the caller decides); raises
        TransportError when every attempt failed to connect or was answered with a
        transient status.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ClientError(f"not an http(s) URL: {url!r}", "invalid_url")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        last = ""
        retry_after: float | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, retry_after))
            retry_after = None
            conn = self._connection(parts.scheme, parts.netloc)
            try:
                conn.request(method, target, body=body, headers=sent)
                answer = conn.getresponse()
                if sink is not None and answer.status == 200:
                    _save_stream(answer, sink)
                    data = b""
                else:
                    data = answer.read()
                resp = Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
                if answer.will_close:
                    self._drop(parts.scheme, parts.netloc)
            except (OSError, http.client.HTTPException) as exc:
                # a kept-alive connection the server closed, a refused or reset one: retry
                self._drop(parts.scheme, parts.netloc)
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status in RETRY_STATUSES or _in_progress(resp):
                last = f"HTTP {resp.status}"
                retry_after = _retry_after(resp.headers.get("retry-after"))
                if attempt < self.retries:
                    continue
            return resp
        raise TransportError(f"{method} {parts.scheme}://{parts.netloc}{parts.path}: {last}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 60.0)
        # exponential with jitter, so that many threads do not retry in step
        return min(self.backoff * 2 ** (attempt - 1), 15.0) * (0.5 + random.random() / 2)


def _in_progress(resp: Response) -> bool:
    return resp.status == 409 and b"idempotency_in_progress" in resp.body


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _save_stream(answer: http.client.HTTPResponse, path: Path) -> None:
    """Write a response body to ``path`` through a temporary file and a rename."""
    with atomic_file(path) as target:
        with open(target.tmp, "wb") as out:
            while chunk := answer.read(CHUNK):
                out.write(chunk)
        target.commit()


class ApiClient:
    """Cutout's API at ``base_url`` (``http://host:port``), with an optional API key."""

    def __init__(
        self, base_url: str, api_key: str | None = None, *, http: Http | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = http or Http()

    def check_reachable(self, timeout: float = 3.0) -> None:
        """Raise ServiceUnreachable at once when nothing listens at ``base_url``.

        Only a TCP connection is tried (a refused one fails at once; a busy server still
        accepts), so a slow API is not mistaken for an absent one. Without this the first
        request retried for about 25 s in silence and ended in a bare
        ConnectionRefusedError.
        """
        parts = urllib.parse.urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ServiceUnreachable(
                f"nothing answers at {self.base_url} ({reason.lower()}); start the service "
                "with `cutout up` (it prints its URL), or give its address with --api URL"
            ) from None

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(extra or {})
        return headers

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: Mapping[str, str] | None = None,
        sink: Path | None = None,
    ) -> Response:
        """A request to the API; ApiError for any status of 400 or more."""
        body = None
        extra = dict(headers or {})
        if payload is not None:
            body = json.dumps(payload, separators=(",", ":")).encode()
            extra["Content-Type"] = "application/json"
        resp = self.http.request(method, self.base_url + path, body, self._headers(extra), sink)
        if resp.status >= 400:
            raise ApiError(resp.status, _problem(resp), resp.body[:200].decode(errors="replace"))
        return resp

    # -- the endpoints cutout submit uses --------------------------------------------------

    def create_uploads(self, sizes: list[int], content_type: str) -> list[dict[str, Any]]:
        """``POST /v1/uploads``: one signed PUT slot per size (the exact byte count, which
        the signature binds) for ``content_type``."""
        body = {"sizes": list(sizes), "content_type": content_type}
        slots = self.call("POST", "/v1/uploads", body).json()
        if not isinstance(slots, list) or len(slots) != len(sizes):
            raise ClientError("POST /v1/uploads answered an unexpected body", "bad_response")
        return slots

    def put_upload(self, slot: Mapping[str, Any], data: bytes) -> None:
        """PUT ``data`` to a slot's signed URL with the headers the slot names."""
        headers = {str(k): str(v) for k, v in (slot.get("headers") or {}).items()}
        resp = self.http.request(str(slot.get("method") or "PUT"), slot["url"], data, headers)
        if resp.status >= 300:
            text = resp.body[:300].decode(errors="replace")
            raise ApiError(resp.status, {"code": "upload_failed", "detail": text})

    def create_batch(self, body: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        """``POST /v1/batches`` (JSON); the same key and body return the same batch."""
        resp = self.call("POST", "/v1/batches", body, {"Idempotency-Key": idempotency_key})
        return dict(resp.json())

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/batches/{urllib.parse.quote(batch_id)}").json())

    def batch_jobs(
        self,
        batch_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 200,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``GET /v1/batches/{id}/jobs``: (jobs, next_cursor)."""
        query: dict[str, str | int] = {"limit": limit}
        if status:
            query["status"] = status
        if cursor:
            query["cursor"] = cursor
        path = f"/v1/batches/{urllib.parse.quote(batch_id)}/jobs?" + urllib.parse.urlencode(query)
        page = self.call("GET", path).json()
        return list(page.get("items") or []), page.get("next_cursor")

    def download_result(self, job_id: str, path: Path) -> None:
        """``GET /v1/jobs/{id}/result`` into ``path`` (written whole, then renamed)."""
        self.call("GET", f"/v1/jobs/{urllib.parse.quote(job_id)}/result", sink=path)


def _problem(resp: Response) -> dict[str, Any] | None:
    try:
        data = json.loads(resp.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
