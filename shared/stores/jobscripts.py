"""The job store's Lua scripts: each state change and each queue-cap reservation is one
atomic step in Redis (used by ``shared.stores.jobs.RedisStore``), and TRANSITION's arguments
and result.

Used by the API and the worker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.contract.shapes.records import JobRecord, encode
from shared.ids import now_iso


@dataclass(frozen=True)
class Transition:
    """TRANSITION's result (``RedisStore.transition`` and ``RedisStore.claim``)."""

    applied: bool
    previous: str | None
    batch_completed: bool = False
    #: the job's record as read before the change (``RedisStore.claim`` only; None when
    #: the job does not exist)
    before: JobRecord | None = None
    #: the worker process's metric totals as stored, when Redis did not hold its last
    #: write and this job's counts were added to what it held (shared/stores/jobstats.py)
    stats: str | None = None


def script_args(new: str, allowed: Iterable[str], deadline: float, fields: Any) -> list[Any]:
    """TRANSITION's ARGV: the change, then the fields' name/value pairs."""
    args: list[Any] = [new, ",".join(allowed), now_iso(), deadline]
    for name, value in encode(fields).items():
        args += [name, value]
    return args


# KEYS: job, batch counts, batch, done-list, processing set, the tenant's active set
# (or '' for a job without a tenant), the queued index, the batch's score index (or ''),
# the worker processes' metrics (shared/stores/jobstats.py)
# ARGV: new status, allowed-from (csv), now (RFC 3339: the batch's finished_at if this
# completes it), the run's deadline (epoch seconds), then field/value pairs to set.
# Pseudo-fields are not set: `_score` (a succeeded job's quality score) enters the
# batch's score index (a sorted set, worst first, with the batch's TTL) and `_review`
# ('1': below the review threshold) counts in the batch's `review` counter, both once,
# with the job's move to `succeeded` (docs/quality.md); `_proc`, `_seq`, `_stats` and
# `_delta` (a worker process's id, the number of its last write, its metric totals with
# this job, and this job's counts alone: shared/stores/jobstats.py) go to the metrics hash only
# if the state changes, so a finished job is counted exactly once: the totals replace
# the stored ones when those are the process's last write, else this job's counts are
# added to what is stored and the result comes back for the process to carry on from.
# A job in `processing` is also in the processing set, scored by the deadline of its run,
# in the same atomic step, so a worker that dies at any moment leaves a trace the
# sweeper (worker/scheduler.py) finds. A job reaching a terminal state leaves its
# tenant's active set (the queue cap, see reserve_active) in the same step; SREM of a
# job that was never reserved does nothing, so the set stays exact.
# `_claim` (a csv of model names) reads the whole record and applies the change only to
# a queued job without a batch on one of those models; either way the record as read
# comes back, so a worker claims a plain job in one round trip (RedisStore.claim).
# One HMGET (or HGETALL) reads the record, one HSET writes its fields, `attempts` with
# them: each Redis call a script makes costs about as much as a small command.
# Returns {applied (1/0/-1 missing), previous status, batch_completed (1/0), with
# `_claim` the record read before the change (a flat field/value list), and the stored
# metric totals when they were merged}.
TRANSITION = """
local new = ARGV[1]
local score, review, proc, stats, claim, models = nil, nil, nil, nil, false, nil
local seq, delta, resync = nil, nil, nil
local set, attempts = {}, 0
for i = 5, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  if name == '_score' then
    score = value
  elseif name == '_review' then
    review = value
  elseif name == '_proc' then
    proc = value
  elseif name == '_stats' then
    stats = value
  elseif name == '_seq' then
    seq = value
  elseif name == '_delta' then
    delta = value
  elseif name == '_claim' then
    claim, models = true, value
  elseif name == 'attempts' and value == '+1' then
    attempts = 1
  elseif name == 'attempts' and value == '-1' then
    attempts = -1
  else
    set[#set + 1] = name
    set[#set + 1] = value
  end
end
local cur, id, tries, record
if claim then
  record = redis.call('HGETALL', KEYS[1])
  local f = {}
  for i = 1, #record, 2 do f[record[i]] = record[i + 1] end
  cur, id, tries = f['status'], f['id'], f['attempts']
  if not cur then return {-1, '', 0} end
  -- only the plain case: a queued single job on one of these models; the caller
  -- decides every other case from the record and moves the job itself
  local ok, options = pcall(cjson.decode, f['options'] or '')
  local model = ok and type(options) == 'table' and options['model'] or nil
  local plain = (cur == 'queued') and (f['batch_id'] or '') == '' and type(model) == 'string'
  if plain then
    plain = false
    for m in string.gmatch(models, '[^,]+') do
      if m == model then plain = true end
    end
  end
  if not plain then return {0, cur, 0, record} end
else
  local state = redis.call('HMGET', KEYS[1], 'status', 'id', 'attempts')
  cur, id, tries = state[1], state[2], state[3]
  if not cur then return {-1, '', 0} end
end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return {0, cur, 0, record} end
if attempts ~= 0 then
  set[#set + 1] = 'attempts'
  set[#set + 1] = tostring((tonumber(tries) or 0) + attempts)
end
set[#set + 1] = 'status'
set[#set + 1] = new
redis.call('HSET', KEYS[1], unpack(set))
if new == 'processing' then
  redis.call('ZADD', KEYS[5], ARGV[4], id)
else
  redis.call('ZREM', KEYS[5], id)
end
-- the queued index: a job (re-)entering queued gets a message right after (or before)
if KEYS[7] then
  if new == 'queued' then
    redis.call('ZADD', KEYS[7], redis.call('TIME')[1], id)
  else
    redis.call('ZREM', KEYS[7], id)
  end
end
local completed = 0
local terminal = (new == 'succeeded' or new == 'failed' or new == 'canceled')
if KEYS[2] ~= '' and cur ~= new then
  redis.call('HINCRBY', KEYS[2], cur, -1)
  redis.call('HINCRBY', KEYS[2], new, 1)
  if new == 'succeeded' and KEYS[8] and KEYS[8] ~= '' and score then
    redis.call('ZADD', KEYS[8], score, id)
    local ttl = redis.call('PTTL', KEYS[2])
    if ttl > 0 then redis.call('PEXPIRE', KEYS[8], ttl) end
    if review == '1' then redis.call('HINCRBY', KEYS[2], 'review', 1) end
  end
  if terminal then
    local done = redis.call('HINCRBY', KEYS[2], '_done', 1)
    local total = tonumber(redis.call('HGET', KEYS[2], 'total') or '0')
    if done >= total and redis.call('HSETNX', KEYS[3], 'finished_at', ARGV[3]) == 1 then
      redis.call('HSET', KEYS[3], 'status', 'completed')
      completed = 1
    end
  end
end
if terminal then
  if KEYS[6] and KEYS[6] ~= '' then
    redis.call('SREM', KEYS[6], id)
  end
  redis.call('RPUSH', KEYS[4], new)
  redis.call('EXPIRE', KEYS[4], 300)
end
if proc and stats and KEYS[9] then
  local stored = redis.call('HGET', KEYS[9], proc)
  local was = stored and string.match(stored, '"seq":(%d+)') or '0'
  if was == seq then
    redis.call('HSET', KEYS[9], proc, stats)
  else
    -- Redis does not hold what this process last wrote (writes lost in a crash or a
    -- failover, or the field folded): add this job alone, and say what is stored now
    local totals = stored and cjson.decode(stored) or {}
    for part, values in pairs(cjson.decode(delta)) do
      if type(values) == 'table' then
        totals[part] = totals[part] or {}
        for key, n in pairs(values) do totals[part][key] = (totals[part][key] or 0) + n end
      else
        totals[part] = values
      end
    end
    totals['seq'] = tonumber(was) + 1
    resync = cjson.encode(totals)
    redis.call('HSET', KEYS[9], proc, resync)
  end
end
return {1, cur, completed, record or false, resync}
"""


# KEYS: the tenant's active set. ARGV: cap, TTL seconds, then the job ids to add.
# All or nothing: the ids join only if the set stays within the cap.
# Returns {1 reserved / 0 refused, the set's size after}.
RESERVE = """
local size = redis.call('SCARD', KEYS[1])
if size + (#ARGV - 2) > tonumber(ARGV[1]) then return {0, size} end
for i = 3, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, redis.call('SCARD', KEYS[1])}
"""

# KEYS: a job's hash. ARGV: field, value, ... Sets them only while the hash exists, in
# one step: a job expiring between a check and a write would leave a hash of these
# fields alone, with no status and no expiry.
UPDATE_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 0
"""

# KEYS: the expiry set. ARGV: now, limit. Takes the due entries (up to limit) out of the
# set and returns them, in one step: each entry goes to one caller, in one round trip
# (a range then one ZREM per entry was up to limit + 1 trips for every worker's pass).
TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""
