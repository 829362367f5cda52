"""`cutout up` against `rembg s`, as a shop's synchronous clients see them (issue 30, item 2).

    python bench/vs_rembg.py [--photos 16] [--clients 4] [--rounds 2] [--model u2net]
                             [--rembg PATH] [--rembg-threads N] [--together]

Both servers answer ``POST /api/remove`` with the cutout itself (Cutout's is the drop-in,
api/rembg_compat.py). ``--clients`` threads each send their share of ``--photos`` photos
one after another, waiting for each answer, exactly the same requests to both.

Both servers are started once, with their own defaults: `rembg s` with ONNX Runtime's
default threads (``--rembg-threads N`` passes ``--threads N``, the requests it runs at
once), `cutout up` with its defaults (CUTOUT_MODELS set to ``--model``, the rate limit
raised so the bench measures the service, not the limiter). Before any round the bench
waits for Cutout's start-up work to end: a fresh data folder's matting warmer compiles
pymatting for ~30-40 CPU-s at nice 10 (worker/warmup.py), which halved `rembg s`'s
throughput while it ran (ONNX Runtime's two spinning threads pay for every preemption).
Each server is then warmed (one request per client, not timed). Rounds alternate
(rembg, cutout, rembg, cutout, ...) so both see the same machine, and while one is
measured the other's processes are stopped (SIGSTOP), so its idle timers take nothing.

Reported per server: wall seconds per round, photos/s, and the ratio cutout / rembg of
the photos/s (the issue's target: at least 0.97). For Cutout also the worker's idle time
per job: the run's span times the pool children, less their busy time (each job's
``started_at`` → ``finished_at``), divided by the jobs.

Photos: the JPEGs of CUTOUT_EVAL_DIR's ``photos`` (bench/evalset.py) when set, else
generated 1024×768 JPEGs (bench/service.py ``images``). rembg needs its weights in
U2NET_HOME: the bench points it at a folder holding a link to Cutout's own cached copy
(the same file), so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import ROOT, http, multipart, parse_time, start_up, wait_workers
from service import images

sys.path.insert(0, str(ROOT))

from cutout.stack import free_port

VENV = ROOT / "bench" / ".rembg-venv"  # bench/engine.py's, git-ignored
REMBG = "rembg[cli]==2.0.86"  # the version Cutout's default output matches


def ensure_rembg_cli(command: Path) -> None:
    """``rembg s`` needs rembg's cli extra: install it into bench/.rembg-venv on first use."""
    if command.exists():
        check = subprocess.run([command, "s", "--help"], capture_output=True, check=False)
        if check.returncode == 0:
            return
    if command != VENV / "bin" / "rembg":
        raise SystemExit(f"{command} cannot run `rembg s`: install {REMBG}")
    print(f"installing {REMBG} and onnxruntime into {VENV} ...", file=sys.stderr)
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, REMBG, "onnxruntime"], check=True)


def wait_port(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            http("GET", url)
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    raise SystemExit(f"{url} did not start:\n{log.read_text(errors='replace')[-3000:]}")


def start_rembg(
    binary: Path | str, model_file: Path, tmp: Path, threads: int | None
) -> tuple[subprocess.Popen[bytes], str]:
    home = tmp / "u2net"
    home.mkdir()
    (home / model_file.name).symlink_to(model_file)
    port = free_port()
    log = tmp / "rembg.log"
    env = dict(os.environ, U2NET_HOME=str(home))
    command = [str(binary), "s", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    if threads:
        command += ["--threads", str(threads)]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=open(log, "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_port(f"{url}/api", proc, log)
    return proc, url


def start_cutout(model: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """`cutout up` with its own defaults but the model and a rate limit out of the way:
    its process, URL and Redis URL."""
    folder = tmp / "cutout"
    folder.mkdir()
    concurrency_and_threads = {"CUTOUT_WORKER_CONCURRENCY": None, "CUTOUT_ORT_THREADS": None}
    return start_up(folder, free_port(), CUTOUT_MODELS=model, **concurrency_and_threads)


def remove(url: str, model: str, blob: bytes) -> float:
    body, ctype = multipart({"model": model}, {"file": ("p.jpg", blob, "image/jpeg")})
    started = time.perf_counter()
    status, _, raw = http("POST", f"{url}/api/remove", body, {"Content-Type": ctype})
    if status != 200 or not raw.startswith(b"\x89PNG"):
        raise SystemExit(f"{url}: HTTP {status}: {raw[:200]!r}")
    return time.perf_counter() - started


def run_round(url: str, model: str, blobs: list[bytes], clients: int) -> float:
    shares = [blobs[i::clients] for i in range(clients)]

    def client(share: list[bytes]) -> None:
        for blob in share:
            remove(url, model, blob)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, shares))
    return time.perf_counter() - started


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most jobs running at one moment: the pool children that took part."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def idle_per_job(redis_url: str, since: float) -> dict[str, float]:
    """Pool children's idle time per job for the jobs started after ``since`` (epoch)."""
    import redis

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    spans = []
    for key in r.scan_iter("cutout:job:job_*", count=1000):
        if r.type(key) != "hash":
            continue
        job = r.hmget(key, "started_at", "finished_at")
        if job[0] and job[1] and parse_time(str(job[0])) >= since:
            spans.append((parse_time(str(job[0])), parse_time(str(job[1]))))
    if not spans:
        return {}
    children = most_at_once(spans)
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    busy = sum(e - s for s, e in spans)
    return {
        "jobs": len(spans),
        "children": children,
        "busy_share": round(busy / (span * children), 3),
        "idle_ms_per_job": round((span * children - busy) / len(spans) * 1000, 1),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rembg",
        type=Path,
        default=VENV / "bin" / "rembg",
        help="the rembg command (default: bench/.rembg-venv's, installed on first use)",
    )
    parser.add_argument(
        "--rembg-threads",
        type=int,
        help="rembg s --threads: requests it runs at once (default: its own, 40)",
    )
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="u2net")
    parser.add_argument(
        "--together", action="store_true", help="leave the other server running meanwhile"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from shared.contract.settings import default_model_home
    from worker.engine.models import ensure_model

    weights = ensure_model(args.model, default_model_home())
    ensure_rembg_cli(args.rembg)
    blobs = images(args.photos)
    tmp = Path(tempfile.mkdtemp(prefix="cutout-vs-rembg-"))
    procs = []
    try:
        rembg, rembg_url = start_rembg(args.rembg, weights, tmp, args.rembg_threads)
        procs.append(rembg)
        cutout, cutout_url, redis_url = start_cutout(args.model, tmp)
        procs.append(cutout)
        wait_workers(cutout_url, 1)
        wait_warmers(cutout.pid)
        urls = {"rembg": rembg_url, "cutout": cutout_url}
        for url in urls.values():  # warm: every client once, so every session is loaded
            run_round(url, args.model, blobs[: args.clients], args.clients)
        groups = {} if args.together else {"rembg": rembg.pid, "cutout": cutout.pid}
        walls, idle = rounds(args, blobs, urls, groups, redis_url)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(120)
    results = summary(walls, idle, len(blobs))
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def rounds(
    args: argparse.Namespace,
    blobs: list[bytes],
    urls: dict[str, str],
    groups: dict[str, int],
    redis_url: str,
) -> tuple[dict[str, list[float]], list[dict[str, float]]]:
    """The timed rounds, alternating servers: wall seconds of each, Cutout's idle."""
    walls: dict[str, list[float]] = {name: [] for name in urls}
    idle = []
    for _ in range(args.rounds):
        for name, url in urls.items():
            with alone(groups, name, urls["cutout"]):
                since = time.time()
                walls[name].append(run_round(url, args.model, blobs, args.clients))
            if name == "cutout":
                idle.append(idle_per_job(redis_url, since))
    return walls, idle


def wait_warmers(pid: int, timeout: float = 600) -> None:
    """Until no process of ``cutout up`` runs below normal priority: a fresh data folder's
    matting warmer compiles pymatting's numba code for ~30-40 CPU-s at nice 10
    (worker/warmup.py), which would slow whichever server is measured meanwhile."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        niced = []
        for proc in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if proc.nice() > 0 and proc.status() != psutil.STATUS_ZOMBIE:
                    niced.append(proc)
        if not niced:
            return
        time.sleep(1)
    raise SystemExit("cutout's warmers did not finish")


@contextlib.contextmanager
def alone(groups: dict[str, int], name: str, cutout_url: str) -> Iterator[None]:
    """Run the body with every other server's process group stopped (SIGSTOP): an idle
    server's timers and threads would otherwise take the cores from the measured one."""
    others = [pid for other, pid in groups.items() if other != name]
    for pid in others:
        os.killpg(pid, signal.SIGSTOP)
    try:
        if name == "cutout":
            wait_workers(cutout_url, 1)
        yield
    finally:
        for pid in others:
            os.killpg(pid, signal.SIGCONT)


def summary(walls: dict[str, list[float]], idle: list[dict[str, float]], n: int) -> dict[str, Any]:
    rate = {name: [n / w for w in ws] for name, ws in walls.items()}
    ratios = [c / r for c, r in zip(rate["cutout"], rate["rembg"], strict=True)]
    return {
        "wall_s": {name: [round(w, 2) for w in ws] for name, ws in walls.items()},
        "photos_per_s": {name: [round(x, 3) for x in xs] for name, xs in rate.items()},
        "ratio_per_round": [round(x, 3) for x in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
        "cutout_idle": idle,
    }


if __name__ == "__main__":
    sys.exit(main())
