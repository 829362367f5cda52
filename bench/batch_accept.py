"""Benchmark: how long the API takes to accept one large JSON batch, and to enqueue it.

    python bench/batch_accept.py [--items 10000] [--rounds 3] [--uploads] [--profile]

A real redis-server (started here, on a free port, data in a temporary folder) and the
API in-process (Flask test client, ``create_app`` as in production, no authentication):
``POST /v1/batches`` with ``--items`` ``image_url`` items (each with a small ``metadata``)
is timed from the request to the 202, which covers JSON parsing, validating every item
(URL check, options, metadata), reserving the tenant's queue cap, writing the batch and
its job records in pipelined chunks and queueing the one ``cutout.enqueue_batch`` task.
Then the worker's part, ``worker.batches`` run in this process against the same Redis
(continuations included), is timed until every item's ``process_job`` message is in
``bulk``: the time until a worker could start on the last item.

``--uploads`` times ``upload_key`` items instead: that needs storage, so a SeaweedFS
(``weed mini``) is started too and one small object per item is put there beforehand
(untimed); the API then checks every key with a HEAD request, a few at a time.

Each round starts from an empty database; the best and the median round are printed.
Wall-clock times on a shared machine: run it when the machine is otherwise idle.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "cutout-bench", "AWS_SECRET_ACCESS_KEY": "cutout-bench-secret"}


def body_of(n: int, keys: list[str] | None) -> dict[str, Any]:
    items = []
    for i in range(n):
        source = (
            {"upload_key": keys[i]}
            if keys
            else {"image_url": f"https://images.example.com/catalogue/{i:06d}.jpg"}
        )
        items.append({**source, "metadata": {"sku": f"SKU-{i:06d}", "name": f"item {i}.jpg"}})
    return {"items": items, "options": {"model": "u2netp", "bg_color": "#ffffff"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uploads", action="store_true", help="upload_key items (starts S3)")
    parser.add_argument("--profile", action="store_true", help="cProfile of the last accept")
    args = parser.parse_args()

    import redis

    from cutout.stack import (
        WeedPorts,
        free_port,
        redis_ready,
        redis_server,
        s3_ready,
        weed_server,
    )

    tmp = Path(tempfile.mkdtemp(prefix="cutout-bench-"))
    port = free_port()
    servers = [redis_server(tmp / "redis", port).start()]
    servers[0].wait_until(redis_ready(port), 30)
    endpoint = f"http://127.0.0.1:{free_port()}"  # never contacted for image_url items
    if args.uploads:
        os.environ.update(CREDENTIALS)
        ports = WeedPorts.pick()
        env = dict(os.environ, **CREDENTIALS)
        servers.append(weed_server(tmp / "s3", ports, "cutout-bench", env).start())
        endpoint = f"http://127.0.0.1:{ports.s3}"
        servers[-1].wait_until(s3_ready(endpoint, "cutout-bench", env), 90)
    try:
        return run(args, f"redis://127.0.0.1:{port}/0", endpoint, redis)
    finally:
        for server in reversed(servers):
            server.stop()


def make_app(args: argparse.Namespace, redis_url: str, endpoint: str) -> tuple[Any, Any]:
    """The settings and the API app (``create_app`` as in production) for this run."""
    from api.app import create_app
    from shared.contract.settings import load_settings

    settings = load_settings(
        {
            "CUTOUT_REDIS_URL": redis_url,
            "CUTOUT_S3_ENDPOINT_URL": endpoint,
            "CUTOUT_S3_BUCKET": "cutout-bench",
            "CUTOUT_MAX_BATCH_ITEMS": str(max(10_000, args.items)),
            "CUTOUT_MAX_QUEUED_PER_TENANT": str(max(20_000, args.items * 2)),
            "CUTOUT_RATE_LIMIT": "1000",
        }
    )
    return settings, create_app(settings)


def upload_keys(services: Any, items: int) -> list[str]:
    """Put one small object per item in storage (untimed); their upload keys."""
    payload = b"\xff\xd8\xff" + b"\x00" * 200
    keys = [f"uploads/public/upl_bench{i:021d}" for i in range(items)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: services.storage.put(k, payload, "image/jpeg"), keys))
    return keys


def time_round(
    client: Any, r: Any, ctx: Any, raw: bytes, items: int, profile: cProfile.Profile | None
) -> tuple[float, float, int, int] | None:
    """One round from an empty database: seconds to accept the batch, seconds until all its
    messages are in ``bulk``, dispatch passes, Redis bytes in use after accepting; None
    (the response printed) when the batch is not accepted."""
    from worker import batches
    from worker.fair import Dispatcher

    r.flushdb()
    if profile:
        profile.enable()
    started = time.perf_counter()
    response = client.post("/v1/batches", data=raw, content_type="application/json")
    accepted = time.perf_counter() - started
    if profile:
        profile.disable()
    if response.status_code != 202:
        print(response.get_data(as_text=True), file=sys.stderr)
        return None
    batch_id = response.get_json()["id"]
    memory = r.info("memory")["used_memory"]
    started = time.perf_counter()
    runs = 0
    batches._enqueue(ctx, batch_id)
    while r.llen("bulk") < items:
        runs += 1
        Dispatcher(ctx).dispatch()
    enqueued = time.perf_counter() - started
    assert r.llen("bulk") == items, r.llen("bulk")
    return accepted, enqueued, runs, memory


def report(accepts: list[float], enqueues: list[float], profile: cProfile.Profile | None) -> None:
    print(
        f"accept: best {min(accepts):.3f} s, median {statistics.median(accepts):.3f} s; "
        f"enqueue: best {min(enqueues):.3f} s, median {statistics.median(enqueues):.3f} s"
    )
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


def run(args: argparse.Namespace, redis_url: str, endpoint: str, redis: Any) -> int:
    from worker import context

    settings, app = make_app(args, redis_url, endpoint)
    client = app.test_client()
    services = app.extensions["cutout"]
    r = redis.Redis.from_url(redis_url)
    keys = upload_keys(services, args.items) if args.uploads else None
    raw = json.dumps(body_of(args.items, keys)).encode()
    print(
        f"{args.items} {'upload_key' if keys else 'image_url'} items, "
        f"request body {len(raw) / 1e6:.2f} MB"
    )
    # the whole batch in one window: this measures sending, not the fair dispatcher's pacing
    ctx = context.configure(dataclasses.replace(settings, bulk_window=args.items), services.celery)
    accepts, enqueues = [], []
    profile = cProfile.Profile() if args.profile else None
    for round_no in range(args.rounds):
        last = round_no == args.rounds - 1
        timed = time_round(client, r, ctx, raw, args.items, profile if last else None)
        if timed is None:
            return 1
        accepted, enqueued, runs, memory = timed
        accepts.append(accepted)
        enqueues.append(enqueued)
        print(
            f"round {round_no + 1}: accepted in {accepted:.3f} s "
            f"({args.items / accepted:,.0f} items/s), all {args.items} messages in `bulk` "
            f"{enqueued:.3f} s later ({runs + 1} dispatch passes); "
            f"Redis {memory / args.items:,.0f} bytes/item after accepting"
        )
    report(accepts, enqueues, profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
