"""Finished-job metrics, counted in each worker process and written with the job's own
state change: no Redis command of their own per job.

Each worker process keeps its running totals since it started (jobs by model and
status, failed jobs by error code, stage durations as histogram bins and sums) and
hands them, as one JSON value, to the transition that finishes a job
(shared/stores/jobscripts.py ``TRANSITION``): the script stores them under the process's
field of ``PROCS_KEY`` only if the job's state changed, in the same atomic step, so a
job is counted exactly once, whichever process finishes it and whenever one dies. The
values are absolute, so a newer one replaces the older (one HSET per job, where the
counters took a hundred HINCRBYs). Each write is numbered: when Redis does not hold the
process's last write (a crash lost its tail, a failover lost what was not replicated,
the field was folded), the script adds this job's counts alone to what Redis holds and
the process carries on from that, so jobs counted in lost writes count again when they
run again, and only then.

When a process stops, its totals are folded into the shared hashes (``FOLD``) and its
field removed; the field of a process that died without stopping stays, still counted,
until the sweeper folds it (:func:`stale_fields`). The API adds the fields to the
folded hashes at scrape time (shared/stores/telemetry.py ``read_stats``).

Used by the API and the worker.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from shared.stores.jobs import PREFIX, PROCS_KEY

__all__ = ["PROCS_KEY", "TALLY", "JobTally"]

STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# PROCS_KEY (shared/stores/jobs.py): process id → JSON {t, jobs, errors, bins, sums}, the
# totals of a running process
# folded stage histograms: `stage|bound` is the count in (previous bound, bound],
# `stage|+Inf` the count above the last bound, `stage|sum` the seconds
BINS_KEY = f"{PREFIX}stats:stage-bins"
# a process field untouched this long, whose process has no heartbeat, is folded
STALE_AFTER = 24 * 3600

# KEYS: procs, jobs, errors, bins. ARGV: the process fields to fold.
# Adds each field's totals to the shared hashes and removes it, in one step.
FOLD = """
local folded = 0
for i = 1, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw then
    local ok, totals = pcall(cjson.decode, raw)
    if ok then
      for field, n in pairs(totals['jobs'] or {}) do
        redis.call('HINCRBY', KEYS[2], field, n)
      end
      for field, n in pairs(totals['errors'] or {}) do
        redis.call('HINCRBY', KEYS[3], field, n)
      end
      for field, n in pairs(totals['bins'] or {}) do
        redis.call('HINCRBY', KEYS[4], field, n)
      end
      for stage, s in pairs(totals['sums'] or {}) do
        redis.call('HINCRBYFLOAT', KEYS[4], stage .. '|sum', string.format('%.17g', s))
      end
    end
    redis.call('HDEL', KEYS[1], ARGV[i])
    folded = folded + 1
  end
end
return folded
"""


def bin_of(seconds: float) -> str:
    """The histogram bin a duration falls in: its bucket's bound, or ``+Inf``."""
    for bound in STAGE_BUCKETS:
        if seconds <= bound:
            return str(bound)
    return "+Inf"


def _empty() -> dict[str, dict[str, Any]]:
    return {"jobs": {}, "errors": {}, "bins": {}, "sums": {}}


class JobTally:
    """This process's totals, and the lock that keeps their writes in order."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # a new id after a fork or a fold: a field is only ever written by one process
        # incarnation, and never again once folded
        self.lock = threading.RLock()
        self.id = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}"
        self.totals = _empty()
        self.seq = 0  # how many writes of this field Redis acknowledged

    def job(
        self,
        model: str,
        status: str,
        timings: Mapping[str, float],
        error_code: str | None = None,
    ) -> tuple[dict[str, dict[str, Any]], tuple[str, int, str, str]]:
        """The totals with one more finished job (kept by :meth:`commit` once the
        transition that carries them applied), and what the transition carries: this
        process's id, its last write's number, the totals and this job's counts alone."""
        delta = _empty()

        def add(part: str, key: str, amount: float = 1) -> None:
            delta[part][key] = delta[part].get(key, 0) + amount

        add("jobs", f"{model}|{status}")
        if error_code:
            add("errors", f"{model}|{error_code}")
        for stage, seconds in timings.items():
            add("bins", f"{stage}|{bin_of(seconds)}")
            add("sums", stage, float(seconds))
        totals = {part: dict(values) for part, values in self.totals.items()}
        for part, values in delta.items():
            for key, amount in values.items():
                totals[part][key] = totals[part].get(key, 0) + amount
        now = round(time.time())
        written = {"t": now, "seq": self.seq + 1, **totals}
        carried = (self.id, self.seq, _json(written), _json({"t": now, **delta}))
        return totals, carried

    def commit(self, totals: dict[str, dict[str, Any]], stored: str | None = None) -> None:
        """The transition applied: keep ``totals``, or, when Redis did not hold this
        process's last write and merged this job into what it held, what it holds."""
        if stored is None:
            self.totals, self.seq = totals, self.seq + 1
        else:
            self.totals, self.seq = decode(stored), int(json.loads(stored).get("seq") or 0)

    def folded(self) -> None:
        """This process's field was folded: count again from zero, under a new id."""
        self._reset()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


TALLY = JobTally()
os.register_at_fork(after_in_child=TALLY._reset)


def decode(raw: str) -> dict[str, dict[str, float]]:
    try:
        totals = json.loads(raw)
    except ValueError:
        return _empty()
    return {part: dict(totals.get(part) or {}) for part in ("jobs", "errors", "bins", "sums")}


def stale_fields(procs: Mapping[str, str], now: float) -> list[str]:
    """The process fields untouched for STALE_AFTER (to fold if their process has no
    heartbeat either: shared/stores/telemetry.py ``fold_stale``)."""
    stale = []
    for field, raw in procs.items():
        try:
            written = float(json.loads(raw).get("t") or 0)
        except (ValueError, AttributeError):
            written = 0.0
        if now - written > STALE_AFTER:
            stale.append(field)
    return stale


def heartbeat_id(field: str) -> str:
    """The ``host.pid`` a process field's process beats under."""
    return field.rsplit(".", 1)[0]


def cumulative(
    stages: Mapping[str, float], bins: Mapping[str, float], sums: Mapping[str, float]
) -> dict[str, float]:
    """Prometheus' cumulative buckets (`stage|bound`, `stage|+Inf`, `stage|sum`): the
    cumulative counters older workers kept (``stages``) plus the bins and sums."""
    out = dict(stages)
    names = {key.partition("|")[0] for key in bins} | set(sums)
    for stage in names:
        running = 0.0
        for bound in (*map(str, STAGE_BUCKETS), "+Inf"):
            running += bins.get(f"{stage}|{bound}", 0.0)
            out[f"{stage}|{bound}"] = out.get(f"{stage}|{bound}", 0.0) + running
        out[f"{stage}|sum"] = out.get(f"{stage}|sum", 0.0) + sums.get(stage, 0.0)
    return out
