"""Helpers for the batch, webhook and priority tests (and bench/fair.py): local HTTP servers
on 127.0.0.1, the API in-process against a Redis database of the test's own, and test images.

Every server here listens on loopback only; the API and the workers reach them because
``CUTOUT_ALLOWED_PRIVATE_NETWORKS`` opens 127.0.0.0/8 (as ``service_env`` does).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from flask import Flask
from PIL import Image
from standardwebhooks.webhooks import Webhook

from api.app import create_app
from shared.contract.settings import load_settings

KEY_A = "tenant-a-key-0123456789"
KEY_B = "tenant-b-key-0123456789"
AUTH_A = {"Authorization": f"Bearer {KEY_A}"}
AUTH_B = {"Authorization": f"Bearer {KEY_B}"}


def make_app(url: str, s3_endpoint: str, **overrides: Any) -> Flask:
    """The API in-process on Redis ``url``, tenants ``a`` and ``b`` (KEY_A, KEY_B)."""
    env = {
        "CUTOUT_REDIS_URL": url,
        "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
        "CUTOUT_S3_BUCKET": "cutout-test",
        "CUTOUT_API_KEYS": f"a:{KEY_A},b:{KEY_B}",
        "CUTOUT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
        "CUTOUT_RATE_LIMIT": "1000",
        "CUTOUT_RATE_BURST": "100000",
    }
    return create_app(load_settings(env, **overrides), {"TESTING": True})


def photo(size: tuple[int, int] = (96, 72), seed: int = 0, fmt: str = "PNG") -> bytes:
    """A product-like photo: a coloured disc on a light backdrop (varies with ``seed``)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w, 3), 225, np.uint8)
    disc = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / 3) ** 2
    img[disc] = ((40 * seed) % 256, 30, 200 - (seed % 100))
    out = io.BytesIO()
    Image.fromarray(img).save(out, fmt)
    return out.getvalue()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    def verify(self, secret: str) -> dict[str, Any]:
        """The payload, verified by the reference Standard Webhooks library (raises if not)."""
        payload = Webhook(secret).verify(self.body, self.headers)
        assert isinstance(payload, dict)
        return payload

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class LocalServer:
    """A threaded HTTP server on 127.0.0.1 with a handler function; stop() when done."""

    handle: Callable[[BaseHTTPRequestHandler, str, bytes], tuple[int, bytes, str]]
    server: ThreadingHTTPServer = field(init=False)

    def __post_init__(self) -> None:
        handle = self.handle

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, data, ctype = handle(self, self.command, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Receiver:
    """A webhook receiver: records every delivery; ``plan[path]`` lists the statuses to
    answer in turn (then 200); while ``held[path]`` is an unset event, a delivery to that
    path is recorded at once but answered only when the event is set (at most 30 s)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.plan: dict[str, list[int]] = {}
        self.held: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.http = LocalServer(self._handle)

    def _handle(
        self, req: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, bytes, str]:
        with self.lock:
            statuses = self.plan.get(req.path) or []
            status = statuses.pop(0) if statuses else 200
            headers = {k.lower(): v for k, v in req.headers.items()}
            self.deliveries.append(Delivery(req.path, headers, body, status))
            hold = self.held.get(req.path)
        if hold is not None:
            hold.wait(30)
        return status, b"ok", "text/plain"

    def url(self, path: str) -> str:
        return self.http.url(path)

    def to(self, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path == path]

    def stop(self) -> None:
        self.http.stop()


class ImageServer:
    """Serves ``files[path]`` (bytes) with 200, anything else 404."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.http = LocalServer(self._handle)

    def _handle(
        self, req: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, bytes, str]:
        data = self.files.get(req.path)
        if data is None:
            return 404, b"no such file", "text/plain"
        return 200, data, "application/octet-stream"

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.http.url(path)

    def stop(self) -> None:
        self.http.stop()
