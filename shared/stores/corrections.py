"""Corrections in the job record (PUT /v1/jobs/{id}/mask): the store side.

A job holds at most one correction at a time in its hash member ``correction`` (JSON):
the public :class:`shared.contract.shapes.records.Correction` (``status``, ``version``,
``requested_at``, ``finished_at``, ``error``) plus its ``id`` (``cor_…``), ``mask``
(the storage key of the mask as sent), ``mask_key`` (the grey mask the worker stored,
once it succeeded) and ``requested`` (epoch seconds). Each step is one Lua script on the
job's hash, so a correction starts only on a ``succeeded`` job of the caller's tenant
with none pending, and finishes only while it is still the job's correction:

- :meth:`CorrectionRecords.begin`: ``pending``, ``version`` the result's plus one. A
  pending correction older than ``stale_after`` seconds (its message lost with a Redis
  crash) no longer blocks a new one; its late run finds another id and does nothing.
- :meth:`CorrectionRecords.finish`: the new ``result`` replaces the old one, which is
  appended to ``versions`` (its text as stored), and the correction is ``succeeded``; the
  job enters its tenant's index of corrected jobs, ``cutout:tenant:<t>:corrected`` (a
  sorted set: job id → when its latest correction finished, epoch seconds by Redis's
  clock, each entry after the newest so the order is the order of the steps; its TTL the
  retention, renewed on each entry), which :meth:`CorrectionRecords.corrected` pages
  through (what a corrections export reads; a member may outlive its job by up to the
  retention, so readers skip jobs that are gone).
- :meth:`CorrectionRecords.fail`: ``failed`` with its error; ``result`` is untouched.

The job's hash keeps its TTL (HSET does not change it): versions live as long as the job.

Used by the API and the worker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from shared.redis.errors import redis_errors
from shared.stores.jobs import PREFIX, RedisStore, job_key


def corrected_key(tenant: str) -> str:
    """The tenant's corrected jobs: job id → when its latest correction finished."""
    return f"{PREFIX}tenant:{tenant}:corrected"


# KEYS: the job. ARGV: tenant, now (epoch s), stale_after (s), the correction's JSON
# without its version (the script adds it: the result's version + 1).
# Returns {outcome, detail}: ok/version, missing/'', status/<job status>,
# pending/<pending correction's JSON>.
_BEGIN = """
local f = redis.call('HMGET', KEYS[1], 'status', 'tenant', 'correction', 'result')
if not f[1] or f[2] ~= ARGV[1] then return {'missing', ''} end
if f[1] ~= 'succeeded' or not f[4] or f[4] == '' then return {'status', f[1]} end
if f[3] and f[3] ~= '' then
  local old = cjson.decode(f[3])
  local requested = tonumber(old['requested']) or 0
  if old['status'] == 'pending' and requested > tonumber(ARGV[2]) - tonumber(ARGV[3]) then
    return {'pending', f[3]}
  end
end
local result = cjson.decode(f[4])
local version = (tonumber(result['version']) or 1) + 1
local correction = cjson.decode(ARGV[4])
correction['version'] = version
redis.call('HSET', KEYS[1], 'correction', cjson.encode(correction))
return {'ok', tostring(version)}
"""

# KEYS: the job, the tenant's corrected index. ARGV: the correction's id, the new
# result's JSON, the finished correction's JSON, now (epoch s; unused: the index takes
# Redis's TIME), the index's TTL (s).
# The previous result's text joins `versions` as it was stored.
_FINISH = """
local f = redis.call('HMGET', KEYS[1], 'correction', 'result', 'versions')
if not f[1] or f[1] == '' then return 0 end
local c = cjson.decode(f[1])
if c['id'] ~= ARGV[1] or c['status'] ~= 'pending' then return 0 end
local versions
if f[3] and f[3] ~= '' and f[3] ~= '[]' and f[3] ~= 'null' then
  versions = string.sub(f[3], 1, -2) .. ',' .. f[2] .. ']'
else
  versions = '[' .. f[2] .. ']'
end
redis.call('HSET', KEYS[1], 'result', ARGV[2], 'correction', ARGV[3], 'versions', versions)
-- the index orders by Redis's own clock, after its newest entry: every worker's step
-- lands after what a reader paging through it has already passed (no gaps)
local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= at then at = tonumber(top[2]) + 0.000001 end
redis.call('ZADD', KEYS[2], string.format('%.6f', at), redis.call('HGET', KEYS[1], 'id'))
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""

# KEYS: the job. ARGV: the correction's id, the failed correction's JSON.
_FAIL = """
local raw = redis.call('HGET', KEYS[1], 'correction')
if not raw or raw == '' then return 0 end
local c = cjson.decode(raw)
if c['id'] ~= ARGV[1] or c['status'] ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'correction', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Begun:
    """What :meth:`CorrectionRecords.begin` found: ``outcome`` is ``ok`` (``version``
    set), ``missing`` (no such job of this tenant), ``status`` (the job is
    ``job_status``, not succeeded) or ``pending`` (``pending`` is that correction)."""

    outcome: str
    version: int = 0
    job_status: str = ""
    pending: dict[str, Any] | None = None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class CorrectionRecords:
    """The scripts on the job store's client. Every method raises Unavailable when
    Redis does not answer."""

    def __init__(self, client: Any, retention: int = 7 * 86400) -> None:
        self.r = client
        self.retention = retention
        self._begin = client.register_script(_BEGIN)
        self._finish = client.register_script(_FINISH)
        self._fail = client.register_script(_FAIL)

    @classmethod
    def from_store(cls, store: RedisStore) -> CorrectionRecords:
        return cls(store.r, store.retention)

    def begin(
        self, job_id: str, tenant: str, correction: dict[str, Any], stale_after: float
    ) -> Begun:
        """Make ``correction`` (without ``version``) the job's pending one, if the job is
        the tenant's, succeeded, and has no pending correction younger than
        ``stale_after`` seconds."""
        with redis_errors():
            outcome, detail = self._begin(
                keys=[job_key(job_id)],
                args=[tenant, time.time(), stale_after, _dumps(correction)],
            )
        if outcome == "ok":
            return Begun("ok", version=int(detail))
        if outcome == "status":
            return Begun("status", job_status=detail)
        if outcome == "pending":
            return Begun("pending", pending=json.loads(detail))
        return Begun("missing")

    def finish(
        self,
        job_id: str,
        tenant: str,
        correction_id: str,
        result: dict[str, Any],
        correction: dict[str, Any],
    ) -> bool:
        """Make ``result`` the job's newest version (the old one joins ``versions``), the
        correction ``succeeded`` and the job one of the tenant's corrected jobs; False
        when ``correction_id`` is no longer the job's pending correction (nothing
        changes)."""
        with redis_errors():
            done = self._finish(
                keys=[job_key(job_id), corrected_key(tenant)],
                args=[
                    correction_id,
                    _dumps(result),
                    _dumps(correction),
                    time.time(),
                    self.retention,
                ],
            )
        return bool(done)

    def corrected(
        self, tenant: str, since: float = 0.0, offset: int = 0, count: int = 100
    ) -> list[tuple[str, float]]:
        """The tenant's corrected jobs whose latest correction finished at or after
        ``since`` (epoch seconds), oldest first: (job id, when), ``count`` from
        ``offset``. Jobs that expired since may be among them."""
        with redis_errors():
            rows = self.r.zrangebyscore(
                corrected_key(tenant), since, "+inf", start=offset, num=count, withscores=True
            )
        return [(str(job_id), float(when)) for job_id, when in rows]

    def fail(self, job_id: str, correction_id: str, correction: dict[str, Any]) -> bool:
        """Record the correction ``failed`` (``result`` untouched); False when it is no
        longer the job's pending correction."""
        with redis_errors():
            done = self._fail(keys=[job_key(job_id)], args=[correction_id, _dumps(correction)])
        return bool(done)
