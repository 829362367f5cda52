"""The job store's Lua scripts: each state change and each queue-cap reservation is one
atomic step in Redis (used by ``shared.store.RedisStore``)."""

# KEYS: job, batch counts, batch, done-list, processing set, the tenant's active set
# (or '' for a job without a tenant), the queued index, the batch's score index (or '')
# ARGV: new status, allowed-from (csv), now (RFC 3339: the batch's finished_at if this
# completes it), the run's deadline (epoch seconds), then field/value pairs to set.
# Two pseudo-fields are not set: `_score` (a succeeded job's quality score) enters the
# batch's score index (a sorted set, worst first, with the batch's TTL) and `_review`
# ('1': below the review threshold) counts in the batch's `review` counter, both once,
# with the job's move to `succeeded` (docs/quality.md).
# A job in `processing` is also in the processing set, scored by the deadline of its run,
# in the same atomic step, so a worker that dies at any moment leaves a trace the
# sweeper (worker/scheduler.py) finds. A job reaching a terminal state leaves its
# tenant's active set (the queue cap, see reserve_active) in the same step; SREM of a
# job that was never reserved does nothing, so the set stays exact.
# Returns {applied (1/0/-1 missing), previous status, batch_completed (1/0)}.
TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {-1, '', 0} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return {0, cur, 0} end
local new = ARGV[1]
local score, review = nil, nil
for i = 5, #ARGV, 2 do
  if ARGV[i] == '_score' then
    score = ARGV[i + 1]
  elseif ARGV[i] == '_review' then
    review = ARGV[i + 1]
  elseif ARGV[i] == 'attempts' and ARGV[i + 1] == '+1' then
    redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  elseif ARGV[i] == 'attempts' and ARGV[i + 1] == '-1' then
    redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('HSET', KEYS[1], 'status', new)
if new == 'processing' then
  redis.call('ZADD', KEYS[5], ARGV[4], redis.call('HGET', KEYS[1], 'id'))
else
  redis.call('ZREM', KEYS[5], redis.call('HGET', KEYS[1], 'id'))
end
-- the queued index: a job (re-)entering queued gets a message right after (or before)
if KEYS[7] then
  if new == 'queued' then
    redis.call('ZADD', KEYS[7], redis.call('TIME')[1], redis.call('HGET', KEYS[1], 'id'))
  else
    redis.call('ZREM', KEYS[7], redis.call('HGET', KEYS[1], 'id'))
  end
end
local completed = 0
local terminal = (new == 'succeeded' or new == 'failed' or new == 'canceled')
if KEYS[2] ~= '' and cur ~= new then
  redis.call('HINCRBY', KEYS[2], cur, -1)
  redis.call('HINCRBY', KEYS[2], new, 1)
  if new == 'succeeded' and KEYS[8] and KEYS[8] ~= '' and score then
    redis.call('ZADD', KEYS[8], score, redis.call('HGET', KEYS[1], 'id'))
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
    redis.call('SREM', KEYS[6], redis.call('HGET', KEYS[1], 'id'))
  end
  redis.call('RPUSH', KEYS[4], new)
  redis.call('EXPIRE', KEYS[4], 300)
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
