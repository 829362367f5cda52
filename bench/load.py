"""Load test: many jobs against `cutout up` with two worker processes, and what it costs.

    python bench/load.py [--jobs 1000] [--clients 8] [--size 300] [--json out.json]

It starts `cutout up` on a fresh data folder (real redis-server with AOF, SeaweedFS,
gunicorn API, one Celery worker with CUTOUT_WORKER_CONCURRENCY=2 and CUTOUT_ORT_THREADS=1,
that is two pool processes of one ONNX Runtime thread each), model u2netp on distinct
generated ~300×300 PNGs, and a thread-pool client that submits every job with
POST /v1/jobs as fast as ``--clients`` connections allow (the queue builds up; the
per-tenant rate limit is lifted so that the service, not the limiter, is measured).

While the workers drain the queue it samples every 5 s: queue depth and finished jobs
from /metrics, each worker process's RSS from /readyz (the workers' own heartbeats), the
RSS of the whole worker process tree (psutil), and Redis memory. At the end it reads
every job once and reports: throughput (jobs/s from the first submit to the last finish,
and while the queue was non-empty), submit latency p50/p99, error count (non-202 submits,
failed jobs, client exceptions: must be 0), Redis used_memory_peak, and worker RSS over
time with its change after warm-up. Exit status 1 when any error was counted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cutout.stack import free_port  # noqa: E402
from testkit.procs import http, multipart  # noqa: E402

SAMPLE_EVERY = 5.0
MB = 1 << 20


def photo(seed: int, size: int) -> bytes:
    """A product-like PNG: a coloured disc with some texture on a light backdrop."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size, 3), 228, np.uint8)
    cx, cy = rng.uniform(0.35, 0.65, 2) * size
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (size * rng.uniform(0.2, 0.33)) ** 2
    img[disc] = rng.integers(20, 220, 3, dtype=np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, "PNG")
    return out.getvalue()


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY seconds: queue depth, finished jobs, worker RSS, Redis memory."""

    def __init__(self, url: str, redis_url: str, up_pid: int) -> None:
        super().__init__(name="sampler", daemon=True)
        import psutil
        import redis

        self.url = url
        self.redis = redis.Redis.from_url(redis_url)
        self.up = psutil.Process(up_pid)
        self.samples: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.start_time = time.time()

    def worker_tree_rss(self) -> float:
        import psutil

        total = 0
        for proc in self.up.children(recursive=True):
            try:
                if "worker" in " ".join(proc.cmdline()):
                    total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total / MB

    def sample(self) -> dict[str, Any]:
        _, _, raw = http("GET", f"{self.url}/metrics")
        text = raw.decode()
        _, _, ready = http("GET", f"{self.url}/readyz")
        workers = json.loads(ready).get("workers", {}).get("details", [])
        memory = self.redis.info("memory")
        return {
            "t": round(time.time() - self.start_time, 1),
            "queued": metric(text, "cutout_queue_depth"),
            "finished": metric(text, "cutout_jobs_finished_total"),
            "workers_rss_mb": {
                w["id"]: round(w.get("rss_bytes", 0) / MB, 1)
                for w in sorted(workers, key=lambda w: w["id"])
            },
            "worker_tree_rss_mb": round(self.worker_tree_rss(), 1),
            "redis_used_mb": round(memory["used_memory"] / MB, 2),
        }

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.samples.append(self.sample())
            except Exception as exc:  # a sample is best effort; the report says so
                self.samples.append({"t": time.time() - self.start_time, "error": repr(exc)})
            self.stopping.wait(SAMPLE_EVERY)

    def stop(self) -> list[dict[str, Any]]:
        self.stopping.set()
        self.join(30)
        return self.samples


def start_up(
    tmp: Path, port: int, **settings: str | None
) -> tuple[subprocess.Popen[bytes], str, str]:
    """`cutout up` on data folder ``tmp``: its process, URL and Redis URL. ``settings``
    override the environment below (None: leave the variable to `cutout up`'s default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOUT_", "AWS_"))}
    chosen: dict[str, str | None] = {
        "CUTOUT_DATA_DIR": str(tmp),
        "CUTOUT_PORT": str(port),
        "CUTOUT_MODELS": "u2netp",
        "CUTOUT_WORKER_CONCURRENCY": "2",
        "CUTOUT_ORT_THREADS": "1",
        "CUTOUT_LOG_LEVEL": "warning",
        # measure the service, not the per-tenant limiter (50/s, burst 200 by default)
        "CUTOUT_RATE_LIMIT": "10000",
        "CUTOUT_RATE_BURST": "100000",
        **settings,
    }
    env.update({name: value for name, value in chosen.items() if value is not None})
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


def wait_workers(url: str, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, raw = http("GET", f"{url}/readyz")
        if json.loads(raw).get("workers", {}).get("alive", 0) >= count:
            return
        time.sleep(0.5)
    raise SystemExit(f"fewer than {count} worker processes sent a heartbeat")


def submit(url: str, blob: bytes) -> tuple[str | None, float, str | None]:
    body, ctype = multipart({"model": "u2netp"}, {"image": ("p.png", blob, "image/png")})
    started = time.perf_counter()
    try:
        status, _, raw = http("POST", f"{url}/v1/jobs", body, {"Content-Type": ctype})
    except Exception as exc:
        return None, time.perf_counter() - started, repr(exc)
    seconds = time.perf_counter() - started
    if status != 202:
        return None, seconds, f"HTTP {status}: {raw[:200]!r}"
    return json.loads(raw)["id"], seconds, None


def wait_finished(url: str, expected: float, timeout: float) -> None:
    """Until /metrics counts ``expected`` finished jobs (one GET every 2 s, not per job)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, raw = http("GET", f"{url}/metrics")
        if metric(raw.decode(), "cutout_jobs_finished_total") >= expected:
            return
        time.sleep(2)
    raise SystemExit("jobs did not finish in time")


def read_jobs(url: str, ids: list[str], clients: int) -> list[dict[str, Any]]:
    def get(job_id: str) -> dict[str, Any]:
        status, _, raw = http("GET", f"{url}/v1/jobs/{job_id}")
        return json.loads(raw) if status == 200 else {"id": job_id, "status": f"HTTP {status}"}

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(get, ids))


def report(
    args: argparse.Namespace,
    latencies: list[float],
    errors: list[str],
    jobs: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    redis_peak_mb: float,
    submit_window: float,
) -> dict[str, Any]:
    ok = [j for j in jobs if j.get("status") == "succeeded"]
    starts = [parse_time(j["created_at"]) for j in ok]
    ends = [parse_time(j["finished_at"]) for j in ok]
    span = max(ends) - min(starts) if ok else float("nan")
    # steady state: the middle 80% of finishes, while the queue was surely non-empty
    ends.sort()
    steady = float("nan")
    if len(ends) >= 10:
        first, last = len(ends) // 10, (len(ends) * 9) // 10
        if ends[last] > ends[first]:
            steady = (last - first) / (ends[last] - ends[first])
    processing = [
        parse_time(j["finished_at"]) - parse_time(j["started_at"]) for j in ok if j["started_at"]
    ]
    rss_series = [s for s in samples if s.get("workers_rss_mb")]
    warm = rss_series[len(rss_series) // 4] if rss_series else {}
    last = rss_series[-1] if rss_series else {}
    growth = {
        wid: round(last["workers_rss_mb"].get(wid, float("nan")) - mb, 1)
        for wid, mb in (warm.get("workers_rss_mb") or {}).items()
    }
    return {
        "jobs": args.jobs,
        "image": f"{args.size}x{args.size} PNG",
        "model": "u2netp",
        "clients": args.clients,
        "workers": "1 worker, concurrency 2 x 1 ONNX Runtime thread",
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_start": args.load_at_start,
        "succeeded": len(ok),
        "errors": len(errors),
        "error_samples": errors[:10],
        "throughput_jobs_per_s": round(len(ok) / span, 3) if ok else 0,
        "steady_jobs_per_s": round(steady, 3),
        "elapsed_s": round(span, 1),
        "submit_window_s": round(submit_window, 1),
        "submit_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "submit_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "submit_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "job_run_p50_s": round(statistics.median(processing), 3) if processing else None,
        "redis_used_memory_peak_mb": round(redis_peak_mb, 2),
        "worker_rss_growth_after_warmup_mb": growth,
        "samples": samples,
    }


def print_report(result: dict[str, Any]) -> None:
    print(
        f"\n{result['jobs']} jobs, {result['model']} on {result['image']}, "
        f"{result['workers']}, {result['clients']} client threads, {result['cores']} cores "
        f"(load average {result['load_average_at_start']} at start)"
    )
    print(
        f"succeeded {result['succeeded']}, errors {result['errors']}; throughput "
        f"{result['throughput_jobs_per_s']} jobs/s over {result['elapsed_s']} s "
        f"(steady {result['steady_jobs_per_s']} jobs/s); one job's run p50 "
        f"{result['job_run_p50_s']} s"
    )
    print(
        f"submit latency p50 {result['submit_p50_ms']} ms, p99 {result['submit_p99_ms']} ms, "
        f"max {result['submit_max_ms']} ms (all {result['jobs']} submitted in "
        f"{result['submit_window_s']} s)"
    )
    print(f"Redis used_memory_peak {result['redis_used_memory_peak_mb']} MB")
    print(f"worker RSS change after warm-up (MB): {result['worker_rss_growth_after_warmup_mb']}")
    header = "worker RSS MB (each process, /readyz)"
    print(f"\n   t s  queued  finished  {header:<41} tree MB  redis MB")
    for s in result["samples"]:
        if "error" in s:
            print(f"{s['t']:6.0f}  sample failed: {s['error']}")
            continue
        rss = " ".join(f"{mb:6.1f}" for mb in s["workers_rss_mb"].values())
        print(
            f"{s['t']:6.0f}  {s['queued']:6.0f}  {s['finished']:8.0f}  {rss:<41} "
            f"{s['worker_tree_rss_mb']:7.1f}  {s['redis_used_mb']:8.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8, help="client threads submitting")
    parser.add_argument("--size", type=int, default=300, help="image side in pixels")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    args.load_at_start = " ".join(f"{x:.1f}" for x in os.getloadavg())

    data = [photo(i, args.size) for i in range(args.jobs)]
    tmp = Path(tempfile.mkdtemp(prefix="cutout-load-"))
    up, url, redis_url = start_up(tmp, free_port())
    print(f"cutout up at {url}, data in {tmp}", flush=True)
    try:
        wait_workers(url, 2)
        # warm both pool processes (the first inference of a session is slower); untimed
        warm = [submit(url, data[0])[0] for _ in range(4)]
        wait_finished(url, len(warm), 300)

        import redis

        r = redis.Redis.from_url(redis_url)
        sampler = Sampler(url, redis_url, up.pid)
        sampler.start()

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda blob: submit(url, blob), data))
        submit_window = time.perf_counter() - started
        ids = [job_id for job_id, _, _ in results if job_id]
        latencies = [seconds for job_id, seconds, _ in results if job_id]
        errors = [error for _, _, error in results if error]
        print(f"submitted {len(ids)} jobs in {submit_window:.1f} s", flush=True)

        wait_finished(url, len(warm) + len(ids), 6 * 3600)
        time.sleep(SAMPLE_EVERY)  # one sample after the last job
        samples = sampler.stop()
        jobs = read_jobs(url, ids, args.clients)
        errors += [
            f"{j['id']}: {j['status']} {j.get('error')}" for j in jobs if j["status"] != "succeeded"
        ]
        peak = r.info("memory")["used_memory_peak"] / MB
        result = report(args, latencies, errors, jobs, samples, peak, submit_window)
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(120)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
