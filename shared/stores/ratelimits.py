"""Token buckets per tenant in Redis: the store side of the API's rate limit (api/ratelimit.py).

One bucket per tenant (hash ``cutout:rate:<tenant>``: tokens, ts), refilled by one Lua
script from the time elapsed on the *Redis* clock, so several API processes on machines
with skewed clocks share one fair bucket. The script refills and takes in one atomic step.

Used by the API only.
"""

from __future__ import annotations

from typing import Any

from shared.redis.errors import redis_errors
from shared.stores.jobs import PREFIX, RedisStore

RATE_PREFIX = f"{PREFIX}rate:"

# KEYS: the tenant's bucket (hash: tokens, ts). ARGV: rate per second, burst, cost.
# Refill by elapsed time × rate up to burst, then take `cost` if that many are there.
# Returns {allowed 1/0, tokens left (string: Lua numbers become integers on return)}.
_BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""


class TokenBuckets:
    """Per-tenant token buckets on a ``decode_responses`` Redis client."""

    def __init__(self, client: Any) -> None:
        self._script = client.register_script(_BUCKET_SCRIPT)

    @classmethod
    def from_store(cls, store: RedisStore) -> TokenBuckets:
        """The buckets on the job store's Redis."""
        return cls(store.r)

    def take(self, tenant: str, rate: float, burst: int, cost: int = 1) -> tuple[bool, float]:
        """Take ``cost`` tokens from ``tenant``'s bucket (``rate`` per second, ``burst``
        capacity): (taken, tokens left). Raises Unavailable when Redis does not answer."""
        with redis_errors():
            allowed, tokens = self._script(
                keys=[RATE_PREFIX + tenant], args=[repr(rate), burst, cost]
            )
        return bool(allowed), float(tokens)
