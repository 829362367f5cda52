"""What one job costs the shared Redis: commands, command time and Redis process CPU.

    python bench/redis_cost.py [--jobs 20] [--rounds 2] [--compare /tmp/rc_base]

It starts `cutout up` (real redis-server with AOF, SeaweedFS, gunicorn API, one Celery
worker of CUTOUT_WORKER_CONCURRENCY=2 × CUTOUT_ORT_THREADS=1) serving u2netp, warms both
pool processes, then measures rounds of ``--jobs`` single jobs (distinct generated PNGs of
``--size`` pixels, POST /v1/jobs from 4 client threads). ``--compare ROOT`` starts a
second stack from another checkout (``git worktree add /tmp/rc_base <commit>``) and
alternates the rounds of both, so both see the same machine.

Per round, on the stack's own Redis: INFO commandstats (calls and usec per command) and
INFO cpu (used_cpu_sys + used_cpu_user of the server process, and of its main thread)
before and after the jobs, then the same reading over an idle window of the same length
with the same processes running (heartbeats, sweeps, Celery's polls): the idle figures
are taken out. The bench waits on each job's done marker (one BLPOP per job) and on the
finished-jobs counter (HGET): those calls and INFO are left out of the counts.

Split by sender (once per stack, after the rounds): the same jobs with SLOWLOG recording
every command (slowlog-log-slower-than 0), which gives each top-level command with its
duration and client address; the addresses map to processes through psutil (API,
worker main process, pool child) and the commands to kinds by key and name (Celery's
transport, metrics, heartbeats, the job store). Commands run inside Lua scripts appear
with no client: they are the script's, counted in its EVALSHA's time. SLOWLOG adds CPU,
so this pass gives counts and command time, never CPU.

Figures: "commands" are top-level commands per job (what clients send; INFO's count,
which adds every command a script runs, is printed beside it); "command time" is the
commandstats usec of those top-level commands; "CPU" is the server process's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import ROOT, free_port, photo, submit, wait_workers

CONCURRENCY = 2
# what the bench itself sends, left out of every count
OWN = {"info", "blpop", "slowlog", "config", "client"}
JOBS_FIELD = "u2netp|succeeded"
BENCH = "redis-cost-bench"  # our client's name, to leave its commands out


class Stack:
    """One `cutout up` from ``root`` (a checkout), with a client on its Redis."""

    def __init__(self, root: Path, label: str) -> None:
        import re

        import redis

        self.root, self.label = root, label
        self.polls = 0  # the bench's own HGETs of the finished-jobs counter
        self.tmp = Path(tempfile.mkdtemp(prefix="cutout-rcost-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOUT_", "AWS_"))}
        env.update(
            PYTHONPATH=str(root),
            CUTOUT_DATA_DIR=str(self.tmp),
            CUTOUT_PORT=str(free_port()),
            CUTOUT_MODELS="u2netp",
            CUTOUT_WORKER_CONCURRENCY=str(CONCURRENCY),
            CUTOUT_ORT_THREADS="1",
            CUTOUT_LOG_LEVEL="warning",
            CUTOUT_RATE_LIMIT="10000",
            CUTOUT_RATE_BURST="100000",
        )
        log_path = self.tmp / "up.log"
        self.up = subprocess.Popen(
            [sys.executable, "-m", "cutout", "up"],
            env=env,
            cwd=root,
            stdout=open(log_path, "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            url = re.search(r"Cutout is running at (\S+)", text)
            port = re.search(r"^redis\s+127\.0\.0\.1:(\d+)", text, re.MULTILINE)
            if url and port:
                self.url, self.port = url.group(1), int(port.group(1))
                self.r = redis.Redis(port=self.port, decode_responses=True, client_name=BENCH)
                return
            if self.up.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"{label}: cutout up did not start:\n{log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        os.killpg(self.up.pid, signal.SIGTERM)
        self.up.wait(120)

    def finished(self) -> int:
        """Jobs counted succeeded: the shared counter plus each worker process's totals
        (shared/stores/jobstats.py; a stack without them answers an empty hash)."""
        self.polls += 1
        pipe = self.r.pipeline(transaction=False)
        pipe.hget("cutout:stats:jobs", JOBS_FIELD)
        pipe.hgetall("cutout:stats:procs")
        shared, procs = pipe.execute()
        count = float(shared or 0)
        for raw in procs.values():
            count += json.loads(raw).get("jobs", {}).get(JOBS_FIELD, 0)
        return int(count)

    def run_jobs(self, blobs: list[bytes]) -> None:
        """Submit every blob as a job, wait for each one's done marker, then for the
        finished-jobs counter (metrics a worker records later are part of the job)."""
        self.polls = 0
        expected = self.finished() + len(blobs)
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda blob: submit(self.url, blob), blobs))
        errors = [error for _, _, error in results if error]
        if errors:
            raise SystemExit(f"{self.label}: {errors[:3]}")
        pending = {f"cutout:job:{job_id}:done" for job_id, _, _ in results}
        deadline = time.monotonic() + 600
        while pending and time.monotonic() < deadline:
            got = self.r.blpop(list(pending), timeout=1)
            if got:
                if got[1] != "succeeded":
                    raise SystemExit(f"{self.label}: a job ended {got[1]}")
                pending.discard(got[0])
        while self.finished() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        if pending or time.monotonic() >= deadline:
            raise SystemExit(f"{self.label}: jobs did not finish in time")

    def reading(self) -> dict[str, Any]:
        cpu = self.r.info("cpu")
        stats = self.r.info("commandstats")
        return {
            "t": time.monotonic(),
            "cpu": cpu["used_cpu_sys"] + cpu["used_cpu_user"],
            "cpu_main": cpu["used_cpu_sys_main_thread"] + cpu["used_cpu_user_main_thread"],
            "cpu_sys": cpu["used_cpu_sys"],
            "calls": {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()},
            "usec": {k.removeprefix("cmdstat_"): v["usec"] for k, v in stats.items()},
        }


def delta(a: dict[str, Any], b: dict[str, Any], polls: int = 0) -> dict[str, Any]:
    calls = {k: v - a["calls"].get(k, 0) for k, v in b["calls"].items() if k not in OWN}
    usec = {k: v - a["usec"].get(k, 0) for k, v in b["usec"].items() if k not in OWN}
    for name in ("hget", "hgetall"):
        if polls and calls.get(name):
            # the bench's own counter polls (one of each): their share of the time too
            usec[name] -= usec[name] * min(1.0, polls / calls[name])
            calls[name] -= polls
    return {
        "s": b["t"] - a["t"],
        "cpu": b["cpu"] - a["cpu"],
        "cpu_main": b["cpu_main"] - a["cpu_main"],
        "cpu_sys": b["cpu_sys"] - a["cpu_sys"],
        "calls": calls,
        "usec": usec,
    }


def pin(stack: Stack) -> None:
    """Redis on the last CPU alone; the stack's other processes and the bench on the rest
    (every thread: affinity is per thread on Linux), as Redis on a host of its own."""
    import psutil

    cpus = sorted(os.sched_getaffinity(0))
    rest = set(cpus[:-1])
    procs = [psutil.Process(stack.up.pid), *psutil.Process(stack.up.pid).children(True)]
    for proc in [*procs, psutil.Process()]:
        alone = "redis-server" in proc.name()
        for thread in proc.threads():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(thread.id, {cpus[-1]} if alone else rest)


def measure(stack: Stack, blobs: list[bytes]) -> dict[str, Any]:
    """One round: the jobs, then an idle window as long; per job, idle taken out."""
    before = stack.reading()
    stack.run_jobs(blobs)
    busy = delta(before, stack.reading(), stack.polls)
    start = stack.reading()
    time.sleep(busy["s"])
    idle = delta(start, stack.reading())
    scale = busy["s"] / idle["s"]
    n = len(blobs)

    def net(key: str, name: str | None = None) -> float:
        if name is None:
            return (busy[key] - idle[key] * scale) / n
        return (busy[key].get(name, 0) - idle[key].get(name, 0) * scale) / n

    names = set(busy["calls"]) | set(idle["calls"])
    calls = {name: net("calls", name) for name in names}
    usec = {name: net("usec", name) for name in names}
    return {
        "seconds": round(busy["s"], 2),
        "cpu_ms": net("cpu") * 1000,
        "cpu_main_ms": net("cpu_main") * 1000,
        "cpu_sys_ms": net("cpu_sys") * 1000,
        "calls_info": sum(calls.values()),
        "usec_info": sum(usec.values()),
        "calls": calls,
        "usec": usec,
    }


class Addresses(threading.Thread):
    """Client port → process role, sampled from the stack's process tree."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack, self.done = stack, threading.Event()
        self.roles: dict[str, str] = {}

    def role(self, proc: Any) -> str:
        line = " ".join(proc.cmdline())
        parent = " ".join(proc.parent().cmdline()) if proc.parent() else ""
        if "worker" in line or "celery" in line:
            return "worker child" if ("worker" in parent or "celery" in parent) else "worker"
        if "api" in line or "gunicorn" in line:
            return "api"
        return "up"

    def sample(self) -> None:
        import psutil

        for proc in psutil.Process(self.stack.up.pid).children(recursive=True):
            try:
                for conn in proc.net_connections("tcp"):
                    if conn.raddr and conn.raddr.port == self.stack.port:
                        self.roles[f"127.0.0.1:{conn.laddr.port}"] = self.role(proc)
            except psutil.Error:
                continue

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            time.sleep(0.2)


def kind(args: list[str]) -> str:
    name = args[0].lower()
    key = args[1] if len(args) > 1 else ""
    if key.startswith("cutout:stats:"):
        return "metrics"
    if key.startswith(("cutout:worker:", "cutout:consumers", "cutout:workers-")):
        return "heartbeats"
    if name in ("evalsha", "eval"):
        return "store scripts"
    if key.startswith("cutout:") or name in ("zcount", "zrangebyscore"):
        return "store"
    return "celery transport"


def split(stack: Stack, blobs: list[bytes]) -> dict[str, Any]:
    """Commands and their time per job by (sender, kind), from SLOWLOG, idle taken out."""
    stack.r.config_set("slowlog-max-len", 1000000)
    stack.r.config_set("slowlog-log-slower-than", 0)
    addresses = Addresses(stack)
    addresses.start()
    try:
        stack.r.slowlog_reset()
        started = time.monotonic()
        stack.run_jobs(blobs)
        busy = stack.r.execute_command("SLOWLOG", "GET", "-1")
        seconds = time.monotonic() - started
        stack.r.slowlog_reset()
        time.sleep(seconds)
        idle = stack.r.execute_command("SLOWLOG", "GET", "-1")
    finally:
        stack.r.config_set("slowlog-log-slower-than", 10000)
        stack.r.slowlog_reset()
        addresses.done.set()
    table: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    commands: Counter[str] = Counter()
    for entries, sign in ((busy, 1.0), (idle, -1.0)):
        for entry in entries:
            args = [a if isinstance(a, str) else str(a) for a in entry[3]]
            addr = entry[4] if len(entry) > 4 else "?"
            if addr == "?:0" or (len(entry) > 5 and entry[5] == BENCH):
                continue  # inside a script (its EVALSHA carries the time), or ours
            sender = addresses.roles.get(addr, "other")
            cell = table[(sender, kind(args))]
            cell[0] += sign / len(blobs)
            cell[1] += sign * entry[2] / len(blobs)
            commands[f"{sender}: {args[0].upper()}"] += int(sign)
    return {
        "by_sender": {f"{s} / {k}": [round(c, 1), round(u)] for (s, k), (c, u) in table.items()},
        "top": {k: round(v / len(blobs), 1) for k, v in commands.most_common(25)},
    }


def summary(rounds: list[dict[str, Any]], parts: dict[str, Any]) -> dict[str, Any]:
    def mean(key: str) -> float:
        return sum(r[key] for r in rounds) / len(rounds)

    top_level = sum(c for c, _ in parts["by_sender"].values())
    top_usec = sum(u for _, u in parts["by_sender"].values())
    return {
        "commands_per_job": round(top_level, 1),
        "commands_per_job_info": round(mean("calls_info"), 1),
        "command_time_us_per_job": round(top_usec),
        "command_time_us_per_job_info": round(mean("usec_info")),
        "redis_cpu_ms_per_job": round(mean("cpu_ms"), 3),
        "redis_cpu_ms_per_job_rounds": [round(r["cpu_ms"], 3) for r in rounds],
        "redis_main_thread_cpu_ms_per_job": round(mean("cpu_main_ms"), 3),
        "redis_cpu_sys_ms_per_job": round(mean("cpu_sys_ms"), 3),
        "split": parts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=200, help="image side in pixels")
    parser.add_argument("--compare", type=Path, help="a checkout to measure side by side")
    parser.add_argument("--pin", action="store_true", help="Redis on a CPU of its own")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    roots = [("current", ROOT)] + ([("baseline", args.compare.resolve())] if args.compare else [])
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    stacks = [Stack(root, label) for label, root in roots]
    results: dict[str, Any] = {}
    try:
        seed = 0
        for stack in stacks:
            wait_workers(stack.url, CONCURRENCY)
            stack.run_jobs([photo(seed + i, args.size) for i in range(2 * CONCURRENCY)])
            if args.pin:
                pin(stack)
        rounds: dict[str, list[dict[str, Any]]] = {s.label: [] for s in stacks}
        for _ in range(args.rounds):
            for stack in stacks:
                seed += args.jobs
                blobs = [photo(seed + i, args.size) for i in range(args.jobs)]
                rounds[stack.label].append(measure(stack, blobs))
        for stack in stacks:
            seed += args.jobs
            parts = split(stack, [photo(seed + i, args.size) for i in range(args.jobs)])
            results[stack.label] = summary(rounds[stack.label], parts)
            results[stack.label]["root"] = str(stack.root)
    finally:
        for stack in stacks:
            stack.stop()
    print(json.dumps(results, indent=1))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def report(results: dict[str, Any]) -> None:
    keys = (
        ("commands_per_job", "commands per job (top level)"),
        ("commands_per_job_info", "commands per job (INFO, with script-inner)"),
        ("command_time_us_per_job", "command time per job, µs (top level)"),
        ("command_time_us_per_job_info", "command time per job, µs (INFO sum)"),
        ("redis_cpu_ms_per_job", "Redis process CPU per job, ms"),
        ("redis_main_thread_cpu_ms_per_job", "Redis main thread CPU per job, ms"),
        ("redis_cpu_sys_ms_per_job", "of which system (kernel) CPU, ms"),
    )
    base = results.get("baseline")
    for key, text in keys:
        line = f"{text:<46}" + "".join(f"{r[key]:>10}" for r in results.values())
        if base and base[key]:
            line += f"   ratio {results['current'][key] / base[key]:.2f}"
        print(line)
    print("labels:", ", ".join(results))


if __name__ == "__main__":
    raise SystemExit(main())
