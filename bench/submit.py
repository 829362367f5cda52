"""``cutout submit`` (uploads + one batch + downloads) against the same images sent as
single jobs, end to end, on one `cutout up`.

    python bench/submit.py [--images 100] [--size 160x120] [--model u2netp] [--rounds 2]

Starts `cutout up` on a fresh data folder (real redis-server, SeaweedFS, gunicorn API,
one Celery worker), warms the worker, then alternates, ``--rounds`` times:

- **submit**: ``cutout submit DIR --out OUT`` as a subprocess, until every result is on
  disk and report.csv is written;
- **single jobs**: the client a user would write without batches: ``POST /v1/jobs``
  (multipart) for every file from 8 threads, poll each job until it finishes, then
  ``GET /v1/jobs/{id}/result`` into a folder from 8 threads.

Both are timed from the first byte sent to the last result written (images/s), and the
client's CPU seconds are reported too (wall time on a shared machine is noisy). The
worker's pace bounds both; what differs is the client and API path around it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cutout.stack import free_port  # noqa: E402
from testkit.procs import http, multipart  # noqa: E402


def make_images(folder: Path, count: int, size: tuple[int, int]) -> None:
    """Small product-like photos: a coloured disc on a light backdrop, PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(count):
        img = np.full((h, w, 3), 225, np.uint8)
        disc = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / (2.5 + (i % 5) / 4)) ** 2
        img[disc] = ((37 * i) % 256, 40, 200 - (i % 100))
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        (folder / f"p{i:04d}.png").write_bytes(buf.getvalue())


def start_up(tmp: Path, model: str, concurrency: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOUT_", "AWS_"))}
    env.update(
        CUTOUT_DATA_DIR=str(tmp / "data"),
        CUTOUT_PORT=str(port),
        CUTOUT_MODELS=model,
        CUTOUT_WORKER_CONCURRENCY=str(concurrency),
        CUTOUT_ORT_THREADS=str(threads),
        CUTOUT_LOG_LEVEL="warning",
        # the bench client makes thousands of requests; it measures pace, not the limiter
        CUTOUT_RATE_LIMIT="10000",
        CUTOUT_RATE_BURST="100000",
    )
    log = open(tmp / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen(
        [sys.executable, "-m", "cutout", "up"], env=env, cwd=ROOT, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    for _ in range(900):
        match = re.search(r"Cutout is running at (\S+)", (tmp / "up.log").read_text())
        if match:
            return up, match.group(1).rstrip("/")
        if up.poll() is not None:
            break
        time.sleep(0.2)
    up.kill()
    raise SystemExit((tmp / "up.log").read_text()[-3000:])


def run_submit(url: str, src: Path, out: Path, model: str) -> tuple[float, float, float]:
    """(wall s, client CPU s, batch created → finished s) of one ``cutout submit``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cutout", "submit", str(src), "--out", str(out), "--api", url,
         "--model", model, "--quiet"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"cutout submit failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    state = json.loads((out / ".cutout-submit.json").read_text())
    batch = json.loads(http("GET", f"{url}/v1/batches/{state['batches'][0]['id']}")[2])
    server = _span(batch["created_at"], batch["finished_at"])
    return wall, cpu, server


def _span(first: str, last: str) -> float:
    """Seconds between two RFC 3339 stamps."""
    from datetime import datetime

    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (parse(last) - parse(first)).total_seconds()


def run_single(url: str, src: Path, out: Path, model: str) -> tuple[float, float, float]:
    """(wall s, client CPU s, first job created → last finished s): POST each file, poll
    each job, GET each result."""
    out.mkdir(parents=True)
    files = sorted(src.iterdir())
    cpu0 = time.process_time()
    start = time.perf_counter()

    def post(path: Path) -> str:
        body, ctype = multipart({"model": model}, {"image": (path.name, path.read_bytes(),
                                                            "image/png")})  # fmt: skip
        status, _, raw = http("POST", f"{url}/v1/jobs", body, {"Content-Type": ctype})
        assert status == 202, raw
        return str(json.loads(raw)["id"])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(post, files))
    pending = set(ids)
    jobs: dict[str, dict] = {}
    while pending:
        for job_id in list(pending):
            with urllib.request.urlopen(f"{url}/v1/jobs/{job_id}") as response:
                job = json.loads(response.read())
            if job["status"] == "succeeded":
                pending.discard(job_id)
                jobs[job_id] = job
            elif job["status"] in ("failed", "canceled"):
                raise SystemExit(f"job failed: {job}")
        if pending:
            time.sleep(0.3)

    def fetch(pair: tuple[Path, str]) -> None:
        path, job_id = pair
        status, _, data = http("GET", f"{url}/v1/jobs/{job_id}/result")
        assert status == 200
        (out / f"{path.stem}.png").write_bytes(data)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fetch, zip(files, ids, strict=True)))
    server = _span(
        min(j["created_at"] for j in jobs.values()), max(j["finished_at"] for j in jobs.values())
    )
    return time.perf_counter() - start, time.process_time() - cpu0, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", default="160x120")
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // args.workers)
    tmp = Path(tempfile.mkdtemp(prefix="cutout-bench-submit-"))
    src = tmp / "images"
    make_images(src, args.images, (w, h))
    up, url = start_up(tmp, args.model, args.workers, threads)
    try:
        # warm the worker (model load) and the API, not timed
        make_images(tmp / "warm-in", 2, (w, h))
        run_submit(url, tmp / "warm-in", tmp / "warm-out", args.model)
        times: dict[str, list[tuple[float, float, float]]] = {"submit": [], "single": []}
        for r in range(args.rounds):
            times["submit"].append(run_submit(url, src, tmp / f"submit-{r}", args.model))
            times["single"].append(run_single(url, src, tmp / f"single-{r}", args.model))
        load = os.getloadavg()[0]
        print(
            f"{args.images} images {w}x{h} PNG, model {args.model}, {args.workers} worker(s) x "
            f"{threads} ORT threads, {cores} cores, load average {load:.1f}"
        )
        for name, runs in times.items():
            walls = [run[0] for run in runs]
            cpus = [run[1] for run in runs]
            servers = [run[2] for run in runs]
            best = min(walls)
            print(
                f"{name:>7}: {args.images / best:.2f} img/s best "
                f"({args.images / statistics.median(walls):.2f} median) over {len(runs)} "
                f"round(s); walls {', '.join(f'{x:.1f}s' for x in walls)}; server first "
                f"created → last finished {', '.join(f'{x:.1f}s' for x in servers)}; "
                f"client CPU {statistics.median(cpus):.2f}s"
            )
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)


if __name__ == "__main__":
    main()
