"""What one job costs Redis when Redis is busy: a job's Redis work replayed back to back.

    python bench/redis_replay.py [--jobs 2000] [--procs 4] [--rate 0 …] [--compare /tmp/rc_base]

bench/redis_cost.py measures a real `cutout up` at a few jobs per second, where every
command finds Redis idle and pays for cold caches and a wake-up. This one measures the
other end, the cost that decides how many jobs one Redis core carries: ``--procs``
client processes run the Redis side of ``--jobs`` jobs as fast as they can, against a
fresh redis-server configured as `cutout up` starts it (AOF, appendfsync everysec),
through the code of the checkout under test (``--compare ROOT`` runs another checkout
in turn, alternating rounds):

- the API: the rate limit's token bucket, the queue cap's reservation, the record
  (shared/stores/ratelimits.py, shared/stores/jobs.py), and Celery's publish (an LPUSH of a message
  of the real size);
- the worker: Celery's fetch and unacked bookkeeping (RPOP, then MULTI ZADD HSET EXEC as
  kombu does), the claim (worker/tasks.py ``_claim``), the outcome with its metrics
  (worker/outcome.py ``finish``), and Celery's ack (MULTI ZREM HDEL EXEC).

It reports the Redis server's CPU per job (INFO cpu, user + system) and commands per job
(INFO stats, script-inner commands included), the top-level command time per job (a
separate pass of ``--slowlog-jobs`` jobs from one client with SLOWLOG recording every
command: commands a script runs are inside their script call's time), and jobs/s
(bounded by the clients: the figure to read is the CPU per job, and 1000 / it, the
jobs/s one Redis core would carry if Redis were the only limit).

``--rate R …`` paces the clients at R jobs a second in all (one measurement per rate; 0 is
back to back), which shows how the cost per job falls as Redis gets busier: at a few jobs
a second each round trip pays a wake-up (bench/redis_floor.py), at a few hundred several
clients' requests share one. ``--compare`` takes a checkout from before issue 28's regroup
of shared/ too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

MESSAGE = "x" * 1400  # a Celery message's size, as LPUSHed by the API


def checkout_parts() -> tuple[Any, Any, Any]:
    """The checkout's settings loader, token buckets and worker store, wherever it keeps
    them: decided by the folder, not by trying, since an editable install would import
    the modules an older checkout lacks from the installed one."""
    import shared

    if (Path(shared.__file__).parent / "stores").is_dir():
        from shared.contract.settings import load_settings
        from shared.stores.ratelimits import TokenBuckets
        from shared.stores.workerstore import RedisWorkerStore
    else:  # a checkout from before issue 28 regrouped shared/
        from shared.ratelimits import TokenBuckets  # type: ignore[no-redef]
        from shared.settings import load_settings  # type: ignore[no-redef]
        from shared.workerstore import RedisWorkerStore  # type: ignore[no-redef]
    return load_settings, TokenBuckets, RedisWorkerStore


def client(url: str, jobs: int, tag: str, rate: float = 0.0) -> None:
    """One client process: the Redis side of ``jobs`` jobs, one after the other, at most
    ``rate`` jobs a second (0: back to back)."""
    import redis

    from shared.ids import new_id, now_iso
    from worker import tasks
    from worker.outcome import finish

    load_settings, buckets_class, store_class = checkout_parts()
    r = redis.Redis.from_url(url, decode_responses=True)
    store = store_class(r, 3600)
    buckets = buckets_class(r)
    ctx = SimpleNamespace(store=store, settings=load_settings(), app=None)
    takes_record = "record" in inspect.signature(finish).parameters
    timings = {"fetch": 0.004, "decode": 0.003, "preprocess": 0.002, "inference": 0.21}
    timings.update(postprocess=0.004, encode=0.012, store=0.006, total=0.25)
    started = time.monotonic()
    for i in range(jobs):
        if rate:
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
        job = {
            "id": new_id("job"),
            "tenant": "public",
            "status": "queued",
            "created_at": now_iso(),
            "options": {"model": "u2netp", "format": "png"},
            "metadata": None,
            "attempts": 0,
            "batch_id": None,
            "webhook": None,
            "input_key": f"inputs/public/{tag}{i}/input.png",
            "source": {"kind": "upload"},
            "queue": "interactive",
        }
        # the API
        buckets.take("public", 10000.0, 100000)
        store.reserve_active("public", [job["id"]], 1_000_000)
        store.create_job(job)
        r.lpush("interactive", MESSAGE)
        # the worker: Celery's fetch and bookkeeping, the run's records, Celery's ack
        r.rpop("interactive")
        pipe = r.pipeline()
        pipe.zadd("unacked_index", {f"{tag}{i}": time.time()})
        pipe.hset("unacked", f"{tag}{i}", MESSAGE)
        pipe.execute()
        claimed = tasks._claim(ctx, job["id"])
        # a JobRecord (a dict before issue 28); a string says why it did not run
        assert not isinstance(claimed, str), claimed
        extra = {"record": claimed} if takes_record else {}
        result = {"url": "/r", "key": "outputs/x.png", "content_type": "image/png"}
        result.update(width=320, height=320, bytes=40000, subject=None, foreground=0.4)
        finish(ctx, job["id"], "succeeded", model="u2netp", timings=timings, result=result, **extra)
        pipe = r.pipeline()
        pipe.zrem("unacked_index", f"{tag}{i}")
        pipe.hdel("unacked", f"{tag}{i}")
        pipe.execute()


def run_clients(root: Path, url: str, runs: list[tuple[int, str, float]]) -> None:
    """Client processes on ``root``'s code at once, one per (jobs, tag, rate); waits."""
    env = dict(os.environ, PYTHONPATH=str(root))
    code = (
        "import sys; from redis_replay import client; "
        "client(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))"
    )
    running = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, str(jobs), tag, str(rate)],
            cwd=Path(__file__).parent,
            env=env,
        )
        for jobs, tag, rate in runs
    ]
    if [proc.wait() for proc in running] != [0] * len(running):
        raise SystemExit(f"a client failed ({root})")


def measure(root: Path, url: str, jobs: int, procs: int, rate: float = 0.0) -> dict[str, float]:
    import redis

    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushall()
    run_clients(root, url, [(20, "w", 0.0)])  # warm: scripts loaded, connections made
    cpu0, stats0 = r.info("cpu"), r.info("stats")
    started = time.perf_counter()
    run_clients(root, url, [(jobs // procs, f"p{n}-", rate / procs) for n in range(procs)])
    seconds = time.perf_counter() - started
    cpu1, stats1 = r.info("cpu"), r.info("stats")
    done = (jobs // procs) * procs
    used = sum(cpu1[k] - cpu0[k] for k in ("used_cpu_user", "used_cpu_sys"))
    calls = stats1["total_commands_processed"] - stats0["total_commands_processed"] - 2

    def net(key: str) -> float:
        return float(stats1[key] - stats0[key])

    return {
        "redis_cpu_ms_per_job": round(used / done * 1000, 4),
        "commands_per_job": round(calls / done, 1),
        # the replay's own INFO calls are a few hundred bytes in all: left in
        "kb_in_per_job": round(net("total_net_input_bytes") / done / 1000, 2),
        "kb_out_per_job": round(net("total_net_output_bytes") / done / 1000, 2),
        "jobs_per_s": round(done / seconds, 1),
        "redis_busy": round(used / seconds, 2),
    }


def text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def command_time(root: Path, url: str, jobs: int, rate: float = 0.0) -> dict[str, float]:
    """Top-level command time per job: SLOWLOG records every command of ``jobs`` jobs
    replayed by one client at ``rate`` jobs/s (0: back to back; SLOWLOG adds CPU, so
    this pass gives no CPU figure).
    Commands a script runs are logged with no client address and are left out: their
    time is inside the script call's. EXEC is not logged; its own cost is a few µs."""
    import redis

    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushall()
    old = r.config_get("slowlog-*")
    r.config_set("slowlog-max-len", jobs * 400)
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    try:
        run_clients(root, url, [(jobs, "c", rate)])
        entries = r.slowlog_get(jobs * 400)
    finally:
        r.config_set("slowlog-log-slower-than", old["slowlog-log-slower-than"])
        r.config_set("slowlog-max-len", old["slowlog-max-len"])
    scripts = rest = 0
    for entry in entries:
        address = text(entry.get("client_address")) or "?"
        name = text(entry["command"]).split(" ", 1)[0].lower()
        if address.startswith("?") or name in {"slowlog", "config", "client", "info"}:
            continue
        if name in {"evalsha", "eval"}:
            scripts += entry["duration"]
        else:
            rest += entry["duration"]
    return {
        "command_time_us_per_job": round((scripts + rest) / jobs, 1),
        "scripts_us_per_job": round(scripts / jobs, 1),
        "other_us_per_job": round(rest / jobs, 1),
    }


def run_rounds(
    args: Any, roots: list[tuple[str, Path]], url: str
) -> dict[str, list[dict[str, float]]]:
    """Each round, each rate, each checkout in turn: the CPU pass, then the command-time
    pass at the same rate."""
    rounds: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for rate in args.rate:
            for label, root in roots:
                key = f"{label} @ {rate:g} jobs/s" if rate else label
                result = measure(root, url, args.jobs, args.procs, rate)
                rounds.setdefault(key, []).append(result)
                print(key, result, flush=True)
                if args.slowlog_jobs:
                    result = command_time(root, url, args.slowlog_jobs, rate)
                    rounds.setdefault(f"{key}, command time", []).append(result)
                    print(f"{key}, command time", result, flush=True)
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[0.0],
        help="jobs/s over all clients, one measurement each (0: back to back)",
    )
    parser.add_argument("--compare", type=Path, help="a checkout to measure side by side")
    parser.add_argument(
        "--slowlog-jobs", type=int, default=300, help="jobs of the command-time pass (0: none)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from cutout.stack import free_port, redis_ready, redis_server

    roots = [("current", ROOT)] + ([("baseline", args.compare.resolve())] if args.compare else [])
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = redis_server(Path(tmp), port).start()
        try:
            server.wait_until(redis_ready(port), 30)
            url = f"redis://127.0.0.1:{port}/0"
            rounds = run_rounds(args, roots, url)
        finally:
            server.stop()
    summary = {
        label: {key: round(sum(r[key] for r in rs) / len(rs), 4) for key in rs[0]}
        for label, rs in rounds.items()
    }
    print(json.dumps(summary, indent=1))
    if "baseline" in summary and "current" in summary:
        now, base = summary["current"], summary["baseline"]
        ratio = now["redis_cpu_ms_per_job"] / base["redis_cpu_ms_per_job"]
        print(f"Redis CPU per job, busy Redis: {ratio:.2f}x the baseline's")
    verdict(summary)
    return 0


def verdict(summary: dict[str, dict[str, float]]) -> None:
    """Issue 30's targets against this checkout's figures (busy Redis)."""
    cpu = summary.get("current", {}).get("redis_cpu_ms_per_job")
    took = summary.get("current, command time", {}).get("command_time_us_per_job")
    for name, value, target, unit in (
        ("Redis CPU", cpu, 0.33, "ms"),
        ("command time", took, 150.0, "us"),
    ):
        if value is not None:
            met = "met" if value <= target else "missed"
            print(f"target {name} <= {target:g} {unit} per job: {value:g} {unit} ({met})")


if __name__ == "__main__":
    raise SystemExit(main())
