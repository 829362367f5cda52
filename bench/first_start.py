"""How long a new user waits: ``cutout up`` on a fresh data folder to the first job done.

    python bench/first_start.py [--runs 3] [--model u2net] [--json bench/out/first.json]

Each run starts ``cutout up`` on a new, empty ``CUTOUT_DATA_DIR`` with numba's compile
cache empty too (``NUMBA_CACHE_DIR`` in the data folder, as ``cutout up`` sets it; with
``--inherit-numba-cache`` the caller's own setting or numba's default is kept), reads its
output line by line with timestamps, and as soon as it says it is running submits one
plain job (a photo of the team's evaluation set when ``CUTOUT_EVAL_DIR`` names it, not in
the repository, bench/evalset.py; else a generated one; ``--early`` submits as soon as
the API answers instead) and polls it until it succeeded. It reports, in seconds from the
start: each line of ``cutout up``'s output, when the API first answered, "running"
(``ready``), the first job's submit and success, and the worker's own start-up events
from its log (the worker's ``alpha matting`` / ``warm-up done`` / ``engine ready`` /
``fast model ready`` lines, and when its pool children forked). The model weights must be
in ``CUTOUT_MODEL_HOME`` already (``cutout models fetch``): the first start's download is
the network's time, not ours.

The load average before and after each run is printed: on a shared machine, repeat
until two runs agree, and say what the load was.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalset import find  # noqa: E402

from cutout.stack import free_port  # noqa: E402
from testkit.procs import http, multipart  # noqa: E402

# the worker log's start-up events (JSON lines), shown with their time since the start
WORKER_EVENTS = (
    "Connected to redis",
    "ready.",
    "warm-up done",
    "engine ready",
    "fast model ready",
    "fast mode",
    "alpha matting ready",
    "job succeeded",
)


def photo() -> bytes:
    folder = find("photos")
    photos = sorted(folder.glob("*.jpg")) if folder else []
    if photos:
        return photos[0].read_bytes()
    import numpy as np
    from PIL import Image

    pixels = (np.random.default_rng(0).random((600, 800, 3)) * 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG")
    return out.getvalue()


class Output:
    """``cutout up``'s output lines, each with the seconds since ``start``."""

    def __init__(self, proc: subprocess.Popen[bytes], start: float) -> None:
        self.lines: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.start = start
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            with self.lock:
                self.lines.append((time.monotonic() - self.start, raw.decode(errors="replace")))

    def find(self, pattern: str) -> tuple[float, re.Match[str]] | None:
        with self.lock:
            for at, line in self.lines:
                match = re.search(pattern, line)
                if match:
                    return at, match
        return None


def api_answers(url: str) -> bool:
    try:
        status, _, _ = http("GET", f"{url}/healthz")
    except OSError:
        return False
    return status == 200


def submit_and_wait(url: str, data: bytes, model: str, start: float) -> dict[str, Any]:
    body, ctype = multipart({"model": model}, {"image": ("photo.jpg", data, "image/jpeg")})
    status, _, raw = http("POST", f"{url}/v1/jobs", body, {"Content-Type": ctype})
    submitted = time.monotonic() - start
    assert status == 202, raw[:500]
    job_id = json.loads(raw)["id"]
    while True:
        status, _, raw = http("GET", f"{url}/v1/jobs/{job_id}")
        job = json.loads(raw)
        if job["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    return {
        "submitted_s": round(submitted, 2),
        "succeeded_s": round(time.monotonic() - start, 2),
        "job_started_at": job.get("started_at"),
        "job_finished_at": job.get("finished_at"),
    }


def worker_events(log: Path, wall_start: float) -> list[str]:
    """The worker's start-up events, as "seconds since the start  pid  message  extras"."""
    from datetime import datetime

    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        if not line.startswith("{") or not any(event in line for event in WORKER_EVENTS):
            continue
        record = json.loads(line)
        at = datetime.fromisoformat(record["ts"]).timestamp() - wall_start
        extras = {
            k: record[k]
            for k in ("seconds", "ms", "timings_ms", "numba_cache_dir", "models")
            if k in record
        }
        out.append(f"{at:6.2f}  pid {record['pid']}  {record['msg']}  {extras or ''}")
    return out


def one_run(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="cutout-first-start-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOUT_", "AWS_"))}
    if os.environ.get("CUTOUT_MODEL_HOME"):
        env["CUTOUT_MODEL_HOME"] = os.environ["CUTOUT_MODEL_HOME"]
    env.update(CUTOUT_DATA_DIR=str(tmp / "data"), CUTOUT_PORT=str(port))
    if not args.inherit_numba_cache:
        env["NUMBA_CACHE_DIR"] = str(tmp / "data" / "numba")
    load_before = os.getloadavg()
    wall_start = time.time()
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cutout", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out = Output(proc, start)
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"data_dir": str(tmp / "data")}
    try:
        deadline = start + args.timeout
        api_at = ready_at = None
        while time.monotonic() < deadline and ready_at is None:
            if proc.poll() is not None:
                raise RuntimeError("cutout up exited:\n" + "".join(x for _, x in out.lines))
            if api_at is None and api_answers(url):
                api_at = time.monotonic() - start
                if args.early:
                    break
            found = out.find(r"Cutout is running at (\S+)")
            if found:
                ready_at = found[0]
            time.sleep(0.05)
        result["api_answered_s"] = None if api_at is None else round(api_at, 2)
        result["ready_s"] = None if ready_at is None else round(ready_at, 2)
        result.update(submit_and_wait(url, data, args.model, start))
        # to see the start-up's background work end (warm-ups, the matting warmer)
        time.sleep(args.linger)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    out.thread.join(5)
    result["output"] = [f"{at:6.2f}  {line.rstrip()}" for at, line in out.lines]
    result["worker_log"] = worker_events(tmp / "data" / "logs" / "worker.log", wall_start)
    result["load_before"] = [round(x, 2) for x in load_before]
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--model", default="u2net", help="the first job's model (default u2net)")
    parser.add_argument("--early", action="store_true", help="submit as soon as the API answers")
    parser.add_argument("--inherit-numba-cache", action="store_true")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--linger", type=float, default=0, help="seconds to keep the stack up after the job"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    data = photo()
    runs = []
    for index in range(args.runs):
        result = one_run(args, data)
        runs.append(result)
        print(
            f"run {index + 1}: cpus {os.cpu_count()}, load {result['load_before']} -> "
            f"{result['load_after']}"
        )
        for line in result["output"]:
            print("   ", line)
        print("    worker log:")
        for line in result["worker_log"]:
            print("     ", line)
        print(
            f"    api answered {result['api_answered_s']} s, ready {result['ready_s']} s, "
            f"first job submitted {result['submitted_s']} s, succeeded {result['succeeded_s']} s",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
