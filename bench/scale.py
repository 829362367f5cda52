"""Capacity figures: 1, 2 and 4 worker processes against one Redis and one S3.

    python bench/scale.py [--workers 1 2 4] [--jobs 40] [--size 200] [--json out.json]

For each worker count it starts `cutout up` on a fresh data folder (redis-server,
SeaweedFS, gunicorn API, one Celery worker with CUTOUT_WORKER_CONCURRENCY=N prefork
processes of CUTOUT_ORT_THREADS=1 each), model u2netp on distinct generated PNGs of
``--size`` pixels a side, warms every process, then submits ``--jobs`` jobs with
POST /v1/jobs from 4 client threads and waits for them all.

Per run it reports: jobs/s (first submit to last finish), API submit latency p50/p99,
Redis commands and network bytes per job (INFO stats total_commands_processed,
total_net_input_bytes and total_net_output_bytes read before and after; the idle rate of
the same stack over 10 s before the jobs, heartbeats and sweeps, and the cost of the
bench's own progress polls of /metrics every 2 s are measured and subtracted in the "net"
figures, both are printed; the ten commands called most, per job, from INFO
commandstats, raw), and S3 requests and bytes per job. S3 is counted
from our side, from the code path of a job, not from SeaweedFS: the API PUTs the input,
the worker GETs it and PUTs the output (3 requests: the input's bytes twice, the output's
once); a client that downloads the result adds one GET of the output's bytes. The input
and output sizes are the real ones of the run.

The machine is shared: the load average at the start of each run is printed with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import (
    ROOT,
    free_port,
    http,
    metric,
    parse_time,
    percentile,
    photo,
    read_jobs,
    submit,
    wait_finished,
    wait_workers,
)

IDLE_S = 10.0


def start_up(tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOUT_", "AWS_"))}
    env.update(
        CUTOUT_DATA_DIR=str(tmp),
        CUTOUT_PORT=str(free_port()),
        CUTOUT_MODELS="u2netp",
        CUTOUT_WORKER_CONCURRENCY=str(workers),
        CUTOUT_ORT_THREADS="1",
        CUTOUT_LOG_LEVEL="warning",
        CUTOUT_RATE_LIMIT="10000",
        CUTOUT_RATE_BURST="100000",
    )
    log_path = tmp / "up.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
    up = subprocess.Popen(
        [sys.executable, "-m", "cutout", "up"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        url = re.search(r"Cutout is running at (\S+)", text)
        redis_port = re.search(r"^redis\s+127\.0\.0\.1:(\d+)", text, re.MULTILINE)
        if url and redis_port:
            return up, url.group(1), f"redis://127.0.0.1:{redis_port.group(1)}/0"
        if up.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit("cutout up did not start:\n" + log_path.read_text()[-3000:])


def redis_counters(r: Any) -> dict[str, int]:
    stats = r.info("stats")
    return {
        "commands": stats["total_commands_processed"],
        "in": stats["total_net_input_bytes"],
        "out": stats["total_net_output_bytes"],
    }


def wait_done(url: str, expected: float, timeout: float) -> int:
    """Until /metrics counts ``expected`` finished jobs; returns how many polls it took."""
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        _, _, raw = http("GET", f"{url}/metrics")
        polls += 1
        if metric(raw.decode(), "cutout_jobs_finished_total") >= expected:
            return polls
        time.sleep(2)
    raise SystemExit("jobs did not finish in time")


def idle_costs(r: Any, url: str) -> tuple[dict[str, float], dict[str, int]]:
    """Redis's counters per second of the idle stack, and what one GET /metrics costs."""
    idle0 = redis_counters(r)
    time.sleep(IDLE_S)
    idle1 = redis_counters(r)
    idle_rate = {k: (idle1[k] - idle0[k]) / IDLE_S for k in idle0}
    # what one GET /metrics (our own progress poll) costs Redis, to take it out again
    http("GET", f"{url}/metrics")
    poll0 = redis_counters(r)
    http("GET", f"{url}/metrics")
    poll1 = redis_counters(r)
    poll_cost = {k: poll1[k] - poll0[k] for k in poll0}
    return idle_rate, poll_cost


def measure(url: str, r: Any, data: list[bytes], warmed: int) -> dict[str, Any]:
    """Submit ``data`` from 4 threads and wait for all: Redis counters around it, the
    submit latencies and errors, the progress polls, the seconds and the finished jobs."""
    before = redis_counters(r)
    stats_before = r.info("commandstats")
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda blob: submit(url, blob), data))
    ids = [job_id for job_id, _, _ in results if job_id]
    latencies = [seconds for job_id, seconds, _ in results if job_id]
    errors = [error for _, _, error in results if error]
    polls = wait_done(url, warmed + len(ids), 3600)
    elapsed = time.perf_counter() - started
    after = redis_counters(r)
    stats_after = r.info("commandstats")
    done = read_jobs(url, ids, 4)
    return {
        "before": before,
        "after": after,
        "stats_before": stats_before,
        "stats_after": stats_after,
        "latencies": latencies,
        "errors": errors,
        "polls": polls,
        "elapsed": elapsed,
        "done": done,
    }


def redis_per_job(
    m: dict[str, Any], idle_rate: dict[str, float], poll_cost: dict[str, int], n: int
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Redis counters per job, raw and net of idle and polls; the ten commands called most."""
    after, before, elapsed, polls = m["after"], m["before"], m["elapsed"], m["polls"]
    raw = {k: (after[k] - before[k]) / n for k in after}
    net = {
        k: (after[k] - before[k] - idle_rate[k] * elapsed - poll_cost[k] * polls) / n for k in after
    }
    calls = {
        name.removeprefix("cmdstat_"): v["calls"] - m["stats_before"].get(name, {}).get("calls", 0)
        for name, v in m["stats_after"].items()
    }
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:10]
    return raw, net, {k: round(c / n, 1) for k, c in top}


def summarise(
    setup: dict[str, Any],
    data: list[bytes],
    m: dict[str, Any],
    idle_rate: dict[str, float],
    poll_cost: dict[str, int],
) -> dict[str, Any]:
    """One run's figures, as printed and written: ``setup`` leads them."""
    done, errors, latencies = m["done"], m["errors"], m["latencies"]
    ok = [j for j in done if j.get("status") == "succeeded"]
    errors += [f"{j['id']}: {j['status']}" for j in done if j.get("status") != "succeeded"]
    span = max(parse_time(j["finished_at"]) for j in ok) - min(
        parse_time(j["created_at"]) for j in ok
    )
    n = max(1, len(ok))
    raw, net, top = redis_per_job(m, idle_rate, poll_cost, n)
    in_bytes = statistics.mean(len(b) for b in data)
    out_bytes = statistics.mean(j["result"]["bytes"] for j in ok) if ok else 0
    return {
        **setup,
        "succeeded": len(ok),
        "errors": errors[:10],
        "jobs_per_s": round(len(ok) / span, 3),
        "submit_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "submit_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "redis_commands_per_job": round(raw["commands"], 1),
        "redis_commands_per_job_net_of_idle": round(net["commands"], 1),
        "redis_in_bytes_per_job": round(raw["in"]),
        "redis_out_bytes_per_job": round(raw["out"]),
        "redis_in_bytes_per_job_net_of_idle": round(net["in"]),
        "redis_out_bytes_per_job_net_of_idle": round(net["out"]),
        "redis_top_commands_per_job": top,
        "redis_idle_commands_per_s": round(idle_rate["commands"], 1),
        "redis_commands_per_metrics_poll": poll_cost["commands"],
        "s3_requests_per_job": "3 (PUT input, GET input, PUT output) + 1 GET per download",
        "s3_bytes_per_job": round(2 * in_bytes + out_bytes),
        "s3_bytes_per_download": round(out_bytes),
        "input_bytes": round(in_bytes),
        "output_bytes": round(out_bytes),
    }


def run(workers: int, jobs: int, size: int) -> dict[str, Any]:
    import redis

    setup = {
        "workers": workers,
        "ort_threads": 1,
        "jobs": jobs,
        "image": f"{size}x{size} PNG, u2netp",
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    data = [photo(1000 * workers + i, size) for i in range(jobs)]
    tmp = Path(tempfile.mkdtemp(prefix="cutout-scale-"))
    up, url, redis_url = start_up(tmp, workers)
    print(f"{workers} worker(s): cutout up at {url}", flush=True)
    try:
        wait_workers(url, workers)
        # warm every pool process (first inference is slower); untimed
        warm = [submit(url, data[0])[0] for _ in range(2 * workers)]
        wait_finished(url, len(warm), 600)
        r = redis.Redis.from_url(redis_url)
        idle_rate, poll_cost = idle_costs(r, url)
        m = measure(url, r, data, len(warm))
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(120)
    return summarise(setup, data, m, idle_rate, poll_cost)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--size", type=int, default=200, help="image side in pixels")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    for workers in args.workers:
        result = run(workers, args.jobs, args.size)
        print(json.dumps(result, indent=1), flush=True)
        results.append(result)
    print("\nworkers  jobs/s  submit p50/p99 ms  redis cmd/job (net)  redis B in/out per job")
    for x in results:
        print(
            f"{x['workers']:>7}  {x['jobs_per_s']:>6}  "
            f"{x['submit_p50_ms']:>7}/{x['submit_p99_ms']:<8}  "
            f"{x['redis_commands_per_job']:>7} ({x['redis_commands_per_job_net_of_idle']})  "
            f"{x['redis_in_bytes_per_job']}/{x['redis_out_bytes_per_job']}  "
            f"load {x['load_average_at_start']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if any(x["errors"] for x in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
