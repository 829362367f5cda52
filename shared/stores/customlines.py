"""The line of custom-model jobs per tenant in Redis (worker/fair.py says how it is used).

A job on a custom model (a single job or a batch item) is *parked* when a worker first
takes it: its id joins its tenant's line (``cutout:fair:custom:line:<tenant>``, a sorted
set by arrival, batch items after single jobs, so a redelivered message parks nothing
twice), the tenant joins
``cutout:fair:custom:tenants``, and the job leaves the queued index (no message is
expected while it waits; it stays ``queued``). The dispatcher *admits* at most
``CUTOUT_CUSTOM_MODEL_WINDOW`` of a tenant's parked jobs at a time: an admitted job is in
``cutout:fair:custom:admitted:<tenant>`` until it is no longer queued or processing, is
listed in the queued index again, and its message goes to the back of its queue.
The worker store's part ``custom_lines`` (:class:`shared.stores.workerstore.RedisWorkerStore`).

Used by the worker only.
"""

from __future__ import annotations

import time

from shared.stores.jobs import PREFIX, QUEUED_KEY, job_key
from shared.stores.redisops import RedisOps, translated

CUSTOM_TENANTS_KEY = f"{PREFIX}fair:custom:tenants"
#: added to a batch item's place in its line: a tenant's single jobs (someone waits on
#: them) are admitted before its batch items, each kind in arrival order (~300 years)
BATCH_ITEMS_LATER = 1e10


def custom_line_key(tenant: str) -> str:
    return f"{PREFIX}fair:custom:line:{tenant}"


def custom_admitted_key(tenant: str) -> str:
    return f"{PREFIX}fair:custom:admitted:{tenant}"


# KEYS: line, admitted, tenants set, queued index. ARGV: job id, tenant, its place in the
# line (now; later for a batch item). Returns 0 for an admitted job (run it), 1 once it
# waits in its tenant's line.
_PARK = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""

# KEYS: line, admitted, tenants set, queued index. ARGV: tenant, window, now, the job
# key's prefix. Forgets admitted jobs that finished (or expired), admits queued jobs
# from the line's head up to the window (a job cancelled while parked is dropped), lists
# them in the queued index, and forgets the tenant once it has nothing parked or
# admitted. Returns the admitted ids, to be sent in this order.
_ADMIT = """
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local s = redis.call('HGET', ARGV[4] .. id, 'status')
  if s ~= 'queued' and s ~= 'processing' then redis.call('ZREM', KEYS[2], id) end
end
local room = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[2])
local admitted = {}
while room > 0 do
  local head = redis.call('ZPOPMIN', KEYS[1])
  if #head == 0 then break end
  local id = head[1]
  if redis.call('HGET', ARGV[4] .. id, 'status') == 'queued' then
    redis.call('ZADD', KEYS[2], ARGV[3], id)
    redis.call('ZADD', KEYS[4], ARGV[3], id)
    table.insert(admitted, id)
    room = room - 1
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[1])
end
return admitted
"""


class CustomLineState(RedisOps):
    """Operations on the custom-model lines, on the store's Redis."""

    def _keys(self, tenant: str) -> list[str]:
        return [
            custom_line_key(tenant),
            custom_admitted_key(tenant),
            CUSTOM_TENANTS_KEY,
            QUEUED_KEY,
        ]

    @translated
    def park(self, tenant: str, job_id: str, batch_item: bool = False) -> bool:
        """Put a queued job in its tenant's line (a ``batch_item`` behind the tenant's
        single jobs); False when it is admitted (run it)."""
        args = [job_id, tenant, time.time() + (BATCH_ITEMS_LATER if batch_item else 0)]
        return bool(self._script(_PARK)(keys=self._keys(tenant), args=args))

    @translated
    def tenants(self) -> list[str]:
        """The tenants with custom-model jobs parked or admitted, sorted."""
        return sorted(self.r.smembers(CUSTOM_TENANTS_KEY))

    @translated
    def admit(self, tenant: str, window: int) -> list[str]:
        """Admit the tenant's parked jobs up to ``window`` in flight; their ids."""
        args = [tenant, window, time.time(), job_key("")]
        return [str(i) for i in self._script(_ADMIT)(keys=self._keys(tenant), args=args)]
