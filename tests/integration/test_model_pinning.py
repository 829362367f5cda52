"""A job serves the custom model version it was submitted with; the worker's cache is
bounded and drops the copies of deleted models.

Real parts: the session's redis-server (this module's own database) and SeaweedFS, a
real `cutout api` with API keys, a real `cutout worker` started after the jobs are queued
(with its own model home, so that its cache is its own), tiny custom models built with
the ``onnx`` package (testkit/registration_graphs.py: the channel mean as the mask, or its
negative, so that the two versions cut out opposite halves of a two-tone photo).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from shared.onnx.modelfile import sha256_of
from shared.stores.jobs import RedisStore
from testkit import registration_graphs as graphs
from testkit.batch import ImageServer
from tests.integration.conftest import ApiProcess, WorkerProcess, http, multipart, running_api
from tests.integration.conftest import wait_for as _wait_for

TENANT = "alice"
KEY = "key-alice-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def home(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model home of the module's worker: u2netp linked in, its own registry/ cache."""
    folder = tmp_path_factory.mktemp("pin-models")
    (folder / "u2netp.onnx").symlink_to(model_home / "u2netp.onnx")
    return folder


@pytest.fixture(scope="module")
def api(service_env: dict[str, str], module_db: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    env = dict(
        service_env,
        CUTOUT_REDIS_URL=module_db,
        CUTOUT_API_KEYS=f"{TENANT}:{KEY}",
        CUTOUT_SYNC_TIMEOUT="300",
    )
    with running_api(env, tmp_path_factory.mktemp("api-pin") / "api.log") as api:
        yield api


@pytest.fixture(scope="module")
def start(
    start_worker: Callable[..., WorkerProcess], module_db: str, home: Path
) -> Iterator[Callable[[], WorkerProcess]]:
    """Starts the module's worker when a test asks (once); stopped after the module."""
    started: list[WorkerProcess] = []

    def go() -> WorkerProcess:
        if not started:
            env = {
                "CUTOUT_REDIS_URL": module_db,
                "CUTOUT_MODELS": "u2netp",
                "CUTOUT_MODEL_HOME": str(home),
                "CUTOUT_CUSTOM_MODEL_CACHE_FILES": "2",
            }
            started.append(start_worker(env))
        return started[0]

    yield go
    for worker in started:
        worker.stop()


def wait_for(check: Callable[[], Any], timeout: float = 300) -> Any:
    return _wait_for(check, timeout=timeout, interval=0.3)


def two_tone() -> bytes:
    """A 320×320 PNG: white left half, black right half."""
    image = Image.new("RGB", (320, 320), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 160, 320))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def kept_side(png: bytes) -> str:
    """Which half the cut-out kept opaque: ``left`` or ``right``."""
    alpha = Image.open(io.BytesIO(png)).getchannel("A")
    left, right = alpha.getpixel((40, 160)), alpha.getpixel((280, 160))
    assert isinstance(left, int)
    assert isinstance(right, int)
    assert abs(left - right) > 200, (left, right)
    return "left" if left > right else "right"


def push(api: ApiProcess, name: str, data: bytes) -> None:
    record = {"name": name, "base": {"name": "u2netp"}, "sha256": sha256_of(data)}
    body, ctype = multipart(
        {},
        {
            "record": ("record.json", json.dumps(record).encode(), "application/json"),
            "file": ("model.onnx", data, "application/octet-stream"),
        },
    )
    status, _, answer = http("POST", api.url + "/v1/models", body, {**AUTH, "Content-Type": ctype})
    assert status == 201, answer


def submit(api: ApiProcess, model: str) -> str:
    body, ctype = multipart({"model": model}, {"image": ("p.png", two_tone(), "image/png")})
    status, _, answer = http("POST", api.url + "/v1/jobs", body, {**AUTH, "Content-Type": ctype})
    assert status == 202, answer
    return str(json.loads(answer)["id"])


def finished(api: ApiProcess, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        _, _, raw = http("GET", f"{api.url}/v1/jobs/{job_id}", None, AUTH)
        job = json.loads(raw)
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_for(done)  # type: ignore[no-any-return]


def result(api: ApiProcess, job_id: str) -> bytes:
    job = finished(api, job_id)
    assert job["status"] == "succeeded", job
    status, _, data = http("GET", f"{api.url}/v1/jobs/{job_id}/result", None, AUTH)
    assert status == 200
    return data


def sync_call(url: str, fields: dict[str, str], files: Any, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    """Start a synchronous request in a thread; its answer lands in the returned dict."""
    answer: dict[str, Any] = {}

    def run() -> None:
        body, ctype = multipart(fields, files)
        answer["status"], _, answer["body"] = http(
            "POST", url, body, {**headers, "Content-Type": ctype}
        )

    answer["thread"] = threading.Thread(target=run, daemon=True)
    answer["thread"].start()
    return answer


def test_queued_jobs_keep_the_version_they_were_submitted_with(
    api: ApiProcess, module_db: str, images: ImageServer, start: Callable[[], WorkerProcess]
) -> None:
    push(api, "pinned", graphs.mean_mask("v1"))  # keeps the white (left) half
    # four routes, all queued while no worker runs
    job_id = submit(api, "pinned")
    batch_body = {
        "items": [{"image_url": images.add("/pin/p.png", two_tone())}],
        "options": {"model": "pinned"},
    }
    status, _, raw = http(
        "POST",
        api.url + "/v1/batches",
        json.dumps(batch_body).encode(),
        {**AUTH, "Content-Type": "application/json"},
    )
    assert status == 202, raw
    batch_id = json.loads(raw)["id"]
    photo = {"file": ("p.png", two_tone(), "image/png")}
    rembg = sync_call(api.url + "/api/remove", {"model": "pinned"}, photo, AUTH)
    photo = {"image_file": ("p.png", two_tone(), "image/png")}
    removebg = sync_call(api.url + "/v1.0/removebg", {"model": "pinned"}, photo, {"X-Api-Key": KEY})
    store = RedisStore.from_url(module_db, retention=3600)
    wait_for(lambda: store.active_count(TENANT) == 4, timeout=60)

    push(api, "pinned", graphs.mean_mask("v2", invert=True))  # the other half now
    start()

    job = finished(api, job_id)
    assert (job["status"], job["error"]["code"]) == ("failed", "model_unavailable"), job
    assert "registered again" in job["error"]["message"]

    def batch_item() -> dict[str, Any] | None:
        _, _, page = http("GET", f"{api.url}/v1/batches/{batch_id}/jobs", None, AUTH)
        item = json.loads(page)["items"][0]
        return item if item["status"] in ("succeeded", "failed") else None

    item = wait_for(batch_item)
    assert (item["status"], item["error"]["code"]) == ("failed", "model_unavailable"), item
    for answer in (rembg, removebg):
        answer["thread"].join(timeout=300)
    assert rembg["status"] == 503, rembg["body"][:300]
    assert json.loads(rembg["body"])["code"] == "model_unavailable"
    assert removebg["status"] == 503, removebg["body"][:300]
    assert json.loads(removebg["body"])["errors"][0]["code"] == "model_unavailable"
    # submitted now: the new version
    assert kept_side(result(api, submit(api, "pinned"))) == "right"


def test_the_cache_is_bounded_and_forgets_deleted_models(
    api: ApiProcess, home: Path, start: Callable[[], WorkerProcess]
) -> None:
    start()
    cache = home / "registry"
    models = {f"m{n}": graphs.mean_mask(f"cache{n}") for n in range(3)}
    for name, data in models.items():
        push(api, name, data)
        assert kept_side(result(api, submit(api, name))) == "left"
    sha = {name: sha256_of(data) for name, data in models.items()}
    # CUTOUT_CUSTOM_MODEL_CACHE_FILES=2: the least recently used went first
    assert {p.stem for p in cache.glob("*.onnx")} == {sha["m1"], sha["m2"]}
    status, _, _ = http("DELETE", api.url + "/v1/models/m2", None, AUTH)
    assert status == 204
    # the next fetch prunes: the deleted model's copy goes, not the one used before it
    push(api, "m3", graphs.mean_mask("cache3"))
    assert kept_side(result(api, submit(api, "m3"))) == "left"
    assert {p.stem for p in cache.glob("*.onnx")} == {
        sha["m1"],
        sha256_of(graphs.mean_mask("cache3")),
    }
