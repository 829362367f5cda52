"""End-to-end throughput of `cutout up` against the engine alone, on the same images.

    python bench/service.py [--images 40] [--model u2net] [--concurrency 1 2]

For each worker setting it starts `cutout up` on a fresh data folder (real redis-server,
SeaweedFS, gunicorn API, Celery worker), submits all images at once from a thread pool
(as a client would), polls until every job succeeded, and reports jobs/s and the submit
latency p50/p99 while the workers are busy. The engine alone runs the same images in
one process with the same threads (concurrency × ORT threads = cores), which is the
floor the queue and storage path adds to. Run it on a quiet machine; noise moves both.
Images: the photos of the team's evaluation set when ``CUTOUT_EVAL_DIR`` names it (not in
the repository; bench/evalset.py), else generated 1024×768 noise JPEGs.
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
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalset import find  # noqa: E402

from cutout.stack import free_port  # noqa: E402
from testkit.procs import http, multipart  # noqa: E402


def images(count: int) -> list[bytes]:
    folder = find("photos")
    photos = sorted(folder.glob("*.jpg")) if folder else []
    out = []
    for i in range(count):
        if photos:
            out.append(photos[i % len(photos)].read_bytes())
        else:
            rng = np.random.default_rng(i)
            img = (rng.random((768, 1024, 3)) * 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "JPEG")
            out.append(buf.getvalue())
    return out


def engine_alone(data: list[bytes], model: str, procs: int, threads: int) -> float:
    """images/s of the bare engine: `procs` processes of `threads` ORT threads each."""
    code = f"""
import sys, time
from pathlib import Path
from shared.contract.options import parse_options
from shared.contract.settings import load_settings
from worker.engine import Engine
paths = sys.argv[1:]
engine = Engine(load_settings().model_home, threads={threads})
opts = parse_options({{"model": "{model}"}})
engine.process(Path(paths[0]).read_bytes(), opts)
t = time.perf_counter()
for p in paths:
    engine.process(Path(p).read_bytes(), opts)
print(time.perf_counter() - t)
"""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, blob in enumerate(data):
            path = Path(tmp) / f"{i}.jpg"
            path.write_bytes(blob)
            files.append(str(path))
        shares = [files[i::procs] for i in range(procs)]
        start = time.perf_counter()
        running = [
            subprocess.Popen([sys.executable, "-c", code, *share], cwd=ROOT, stdout=subprocess.PIPE)
            for share in shares
        ]
        for proc in running:
            proc.wait()
        # load time excluded: each process reports its timed loop
        loops = [float(proc.stdout.read()) for proc in running]  # type: ignore[union-attr]
        del start
    return len(data) / max(loops)


def run_service(data: list[bytes], model: str, concurrency: int, threads: int) -> dict:
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="cutout-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOUT_", "AWS_"))}
    env.update(
        CUTOUT_DATA_DIR=tmp,
        CUTOUT_PORT=str(port),
        CUTOUT_MODELS=model,
        CUTOUT_WORKER_CONCURRENCY=str(concurrency),
        CUTOUT_ORT_THREADS=str(threads),
        CUTOUT_LOG_LEVEL="warning",
    )
    log = open(Path(tmp) / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen(
        [sys.executable, "-m", "cutout", "up"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = None
        for _ in range(600):
            match = re.search(r"Cutout is running at (\S+)", (Path(tmp) / "up.log").read_text())
            if match:
                url = match.group(1)
                break
            time.sleep(0.2)
        assert url, (Path(tmp) / "up.log").read_text()[-2000:]
        # warm every worker child: one job per process, not timed
        warm = [_submit(url, data[0], model)[0] for _ in range(concurrency)]
        _wait(url, warm)

        latencies: list[float] = []
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda blob: _submit(url, blob, model), data))
        ids = [job_id for job_id, _ in results]
        latencies = [seconds for _, seconds in results]
        _wait(url, ids)
        elapsed = time.perf_counter() - start
        return {
            "jobs_per_s": len(data) / elapsed,
            "elapsed_s": elapsed,
            "submit_p50_ms": statistics.median(latencies) * 1000,
            "submit_p99_ms": float(np.percentile(latencies, 99)) * 1000,
        }
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)


def _submit(url: str, blob: bytes, model: str) -> tuple[str, float]:
    body, ctype = multipart({"model": model}, {"image": ("p.jpg", blob, "image/jpeg")})
    t = time.perf_counter()
    status, _, raw = http("POST", f"{url}/v1/jobs", body, {"Content-Type": ctype})
    seconds = time.perf_counter() - t
    assert status == 202, raw
    return json.loads(raw)["id"], seconds


def _wait(url: str, ids: list[str]) -> None:
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            with urllib.request.urlopen(f"{url}/v1/jobs/{job_id}") as response:
                job = json.loads(response.read())
            if job["status"] == "succeeded":
                pending.discard(job_id)
            elif job["status"] in ("failed", "canceled"):
                raise RuntimeError(job)
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--model", default="u2net")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    data = images(args.images)
    print(f"{args.images} images, model {args.model}, {cores} cores")
    for concurrency in args.concurrency:
        threads = max(1, cores // concurrency)
        alone = engine_alone(data, args.model, concurrency, threads)
        service = run_service(data, args.model, concurrency, threads)
        overhead = 1 - service["jobs_per_s"] / alone
        print(
            f"workers {concurrency} x {threads} ORT threads: engine alone {alone:.3f} img/s, "
            f"service {service['jobs_per_s']:.3f} jobs/s ({overhead:+.1%} cost), "
            f"submit p50 {service['submit_p50_ms']:.0f} ms p99 {service['submit_p99_ms']:.0f} ms"
        )


if __name__ == "__main__":
    main()
