"""How long a pool child waits for its next job while jobs are queued (issue 30, item 2).

    python bench/idle_gap.py [--jobs 24] [--rounds 2] [--compare /tmp/rc_base]

It starts `cutout up` (one worker of CUTOUT_WORKER_CONCURRENCY=2 × 1 ONNX Runtime thread;
bench/redis_cost.py's stack), warms both pool processes, then submits ``--jobs`` u2netp jobs at
once, so the queue never runs dry until the last ones, and reads every job's record. A
job's run is ``started_at`` → ``finished_at`` (the worker's own clock, written by the
transitions). With two children and a queue, each start after the first two follows some
finish: matched in order (the n-th start after the first two to the n-th finish), the
difference is the gap a child spent between jobs (the ack of the last message, the
broker fetch, the pool's dispatch, the claim). Reported: the gap per job (median, p90,
max), idle share of the children's time while the queue was non-empty, and jobs/s.
``--compare ROOT`` runs another checkout's stack too, alternating rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import ROOT, parse_time, photo, submit, wait_workers
from redis_cost import CONCURRENCY, Stack


def run_round(stack: Stack, blobs: list[bytes]) -> dict[str, Any]:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda blob: submit(stack.url, blob), blobs))
    ids = [job_id for job_id, _, _ in results if job_id]
    pending = {f"cutout:job:{job_id}:done" for job_id in ids}
    while pending:
        got = stack.r.blpop(list(pending), timeout=5)
        if got:
            pending.discard(got[0])
    jobs = [stack.r.hgetall(f"cutout:job:{job_id}") for job_id in ids]
    starts = sorted(parse_time(j["started_at"]) for j in jobs)
    ends = sorted(parse_time(j["finished_at"]) for j in jobs)
    busy = sum(parse_time(j["finished_at"]) - parse_time(j["started_at"]) for j in jobs)
    # the n-th start after the first CONCURRENCY follows the n-th finish
    gaps = [max(0.0, s - e) for s, e in zip(starts[CONCURRENCY:], ends, strict=False)]
    span = ends[-1] - starts[0]
    return {
        "jobs": len(jobs),
        "jobs_per_s": len(jobs) / span,
        "gap_ms": [round(g * 1000, 1) for g in gaps],
        "busy_s": busy,
        "span_s": span,
        "idle_share": 1 - busy / (span * CONCURRENCY),
    }


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    gaps = sorted(g for r in rounds for g in r["gap_ms"])
    return {
        "rounds": len(rounds),
        "gap_ms_median": round(statistics.median(gaps), 1),
        "gap_ms_p90": gaps[int(0.9 * (len(gaps) - 1))],
        "gap_ms_max": gaps[-1],
        "idle_share": round(statistics.mean(r["idle_share"] for r in rounds), 3),
        "jobs_per_s": round(statistics.mean(r["jobs_per_s"] for r in rounds), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=320, help="image side in pixels")
    parser.add_argument("--compare", type=Path, help="a checkout to measure side by side")
    args = parser.parse_args()
    roots = [("current", ROOT)] + ([("baseline", args.compare.resolve())] if args.compare else [])
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    stacks = [Stack(root, label) for label, root in roots]
    rounds: dict[str, list[dict[str, Any]]] = {s.label: [] for s in stacks}
    try:
        for stack in stacks:
            wait_workers(stack.url, CONCURRENCY)
            stack.run_jobs([photo(i, args.size) for i in range(2 * CONCURRENCY)])
        seed = 100
        for _ in range(args.rounds):
            for stack in stacks:
                seed += args.jobs
                blobs = [photo(seed + i, args.size) for i in range(args.jobs)]
                rounds[stack.label].append(run_round(stack, blobs))
    finally:
        for stack in stacks:
            stack.stop()
    results = {label: summary(r) for label, r in rounds.items()}
    print(json.dumps({"results": results, "rounds": rounds}, indent=1))
    for label, r in results.items():
        print(
            f"{label:<9} gap per job median {r['gap_ms_median']} ms, p90 {r['gap_ms_p90']} ms, "
            f"max {r['gap_ms_max']} ms; children idle {r['idle_share']:.1%} of the time; "
            f"{r['jobs_per_s']} jobs/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
