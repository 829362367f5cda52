"""Benchmark: a small batch of one tenant behind a large batch of another.

    python bench/fair.py [--big 200] [--small 10] [--windows 200000 20] [--json PATH]

For each ``CUTOUT_BULK_WINDOW`` in ``--windows`` it starts a fresh redis-server, a
SeaweedFS (``weed mini``) and one real ``cutout worker`` (concurrency 1, one ONNX
Runtime thread, u2netp), runs the API in-process (tenants ``a`` and ``b``), and:
tenant ``a`` submits ``--big`` generated 64×48 JPEGs by URL; once two of them are done,
tenant ``b`` submits ``--small``. It reports each batch's completion time (its
``finished_at`` minus its ``created_at``) and how many of ``a``'s items were still
waiting when ``b``'s batch completed. A window at least ``--big`` is the old behaviour
(every item in ``bulk`` at once); the default window is 200. Wall-clock times on a
shared machine: compare windows within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cutout.stack import (  # noqa: E402
    WeedPorts,
    free_port,
    redis_ready,
    redis_server,
    s3_ready,
    weed_server,
)
from testkit.batch import (  # noqa: E402
    AUTH_A,
    AUTH_B,
    ImageServer,
    make_app,
    photo,
)
from testkit.procs import S3_CREDENTIALS, WorkerProcess  # noqa: E402

BUCKET = "cutout-bench"


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def worker_env(env: dict[str, str], url: str, endpoint: str, window: int) -> dict[str, str]:
    """The environment of the one ``cutout worker``: concurrency 1, u2netp, ``window``."""
    from shared.contract.settings import load_settings

    return dict(
        env,
        CUTOUT_REDIS_URL=url,
        CUTOUT_S3_ENDPOINT_URL=endpoint,
        CUTOUT_S3_BUCKET=BUCKET,
        CUTOUT_MODEL_HOME=str(load_settings().model_home),
        CUTOUT_MODELS="u2netp",
        CUTOUT_WORKER_CONCURRENCY="1",
        CUTOUT_ORT_THREADS="1",
        CUTOUT_FAST="off",
        CUTOUT_LOG_FORMAT="text",
        CUTOUT_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8",
        CUTOUT_BULK_WINDOW=str(window),
    )


def submit(client: Any, images: ImageServer, auth: dict[str, str], tag: str, n: int) -> str:
    items = [
        {"image_url": images.add(f"/{tag}/{i}.jpg", photo((64, 48), i, "JPEG"))} for i in range(n)
    ]
    response = client.post(
        "/v1/batches", json={"items": items, "options": {"model": "u2netp"}}, headers=auth
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def batch(client: Any, batch_id: str, auth: dict[str, str]) -> dict[str, Any]:
    return client.get(f"/v1/batches/{batch_id}", headers=auth).get_json()  # type: ignore[no-any-return]


def race(
    client: Any, images: ImageServer, big: int, small: int
) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """``a``'s big batch, then ``b``'s small one once two of ``a``'s are done, until both
    complete: both batches as last read, and ``a``'s items queued when ``b`` completed."""
    a = submit(client, images, AUTH_A, "a", big)
    while batch(client, a, AUTH_A)["counts"]["succeeded"] < 2:
        time.sleep(0.05)
    b = submit(client, images, AUTH_B, "b", small)
    a_waiting_at_b = None
    while True:
        got_a, got_b = batch(client, a, AUTH_A), batch(client, b, AUTH_B)
        if got_b["status"] == "completed" and a_waiting_at_b is None:
            a_waiting_at_b = got_a["counts"]["queued"]
        if got_a["status"] == "completed" and got_b["status"] == "completed":
            break
        time.sleep(0.2)
    for done, total in ((got_a, big), (got_b, small)):
        assert done["counts"]["succeeded"] == total, done["counts"]
    return got_a, got_b, a_waiting_at_b


def figures(
    window: int,
    big: int,
    small: int,
    got_a: dict[str, Any],
    got_b: dict[str, Any],
    waiting: int | None,
) -> dict[str, Any]:
    return {
        "window": window,
        "big_items": big,
        "small_items": small,
        "big_completed_s": round(_epoch(got_a["finished_at"]) - _epoch(got_a["created_at"]), 1),
        "small_completed_s": round(_epoch(got_b["finished_at"]) - _epoch(got_b["created_at"]), 1),
        "small_finished_first": _epoch(got_b["finished_at"]) < _epoch(got_a["finished_at"]),
        "big_items_waiting_when_small_completed": waiting,
    }


def run_one(window: int, big: int, small: int, tmp: Path) -> dict[str, Any]:
    os.environ.update(S3_CREDENTIALS)
    env = dict(os.environ)
    port = free_port()
    redis = redis_server(tmp / "redis", port).start()
    ports = WeedPorts.pick()
    weed = weed_server(tmp / "s3", ports, BUCKET, env).start()
    endpoint = f"http://127.0.0.1:{ports.s3}"
    url = f"redis://127.0.0.1:{port}/0"
    images = ImageServer()
    worker = None
    try:
        redis.wait_until(redis_ready(port), 30)
        weed.wait_until(s3_ready(endpoint, BUCKET, env), 90)
        worker = WorkerProcess(worker_env(env, url, endpoint, window), tmp / "worker.log", [])
        worker.wait_ready()
        client = make_app(url, endpoint, s3_bucket=BUCKET).test_client()
        got_a, got_b, a_waiting_at_b = race(client, images, big, small)
        return figures(window, big, small, got_a, got_b, a_waiting_at_b)
    finally:
        images.stop()
        if worker is not None:
            worker.stop()
        weed.stop()
        redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=200)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--windows", type=int, nargs="+", default=[200_000, 20])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for window in args.windows:
        with tempfile.TemporaryDirectory(prefix="cutout-fair-") as tmp:
            result = run_one(window, args.big, args.small, Path(tmp))
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
