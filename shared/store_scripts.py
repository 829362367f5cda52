"""The job store's Lua scripts: each state change and each queue-cap reservation is one
atomic step in Redis (used by ``shared.store.RedisStore``)."""

# KEYS: job, batch counts, batch, done-list, processing set, the tenant's active set
# (or '' for a job without a tenant), the queued index, the batch's score index (or ''),
# the worker processes' metrics (shared/jobstats.py)
# ARGV: new status, allowed-from (csv), now (RFC 3339: the batch's finished_at if this
# completes it), the run's deadline (epoch seconds), then field/value pairs to set.
# Pseudo-fields are not set: `_score` (a succeeded job's quality score) enters the
# batch's score index (a sorted set, worst first, with the batch's TTL) and `_review`
# ('1': below the review threshold) counts in the batch's `review` counter, both once,
# with the job's move to `succeeded` (docs/quality.md); `_proc` and `_stats` (a worker
# process's id and its metric totals with this job) are stored in the metrics hash,
# only if the state changes, so a finished job is counted exactly once.
# A job in `processing` is also in the processing set, scored by the deadline of its run,
# in the same atomic step, so a worker that dies at any moment leaves a trace the
# sweeper (worker/scheduler.py) finds. A job reaching a terminal state leaves its
# tenant's active set (the queue cap, see reserve_active) in the same step; SREM of a
# job that was never reserved does nothing, so the set stays exact.
# One HMGET reads the record, one HSET writes its fields: each Redis call a script makes
# costs about as much as a small command.
# Returns {applied (1/0/-1 missing), previous status, batch_completed (1/0)}.
TRANSITION = """
local state = redis.call('HMGET', KEYS[1], 'status', 'id')
local cur, id = state[1], state[2]
if not cur then return {-1, '', 0} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return {0, cur, 0} end
local new = ARGV[1]
local score, review, proc, stats = nil, nil, nil, nil
local set = {}
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
  elseif name == 'attempts' and value == '+1' then
    redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  elseif name == 'attempts' and value == '-1' then
    redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  else
    set[#set + 1] = name
    set[#set + 1] = value
  end
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
  redis.call('HSET', KEYS[9], proc, stats)
end
return {1, cur, completed}
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
