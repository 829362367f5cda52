"""Idempotency-Key records in Redis: the store side of api/idempotency.py.

A record is one string key ``cutout:idem:<tenant>:<sha256 of path NUL key>`` holding JSON:
``{"state": "pending", "fingerprint", "token"}`` while the first request runs (claimed
with ``SET NX``, so concurrent duplicates never both win), then ``{"state": "done",
"fingerprint", "id", "location", "status"}`` for the key's lifetime. A claim is given
back by a Lua script that deletes it only when it still holds the claimer's token.

Used by the API only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import redis

from shared.redis.errors import redis_errors
from shared.stores.jobs import PREFIX, RedisStore

IDEM_PREFIX = f"{PREFIX}idem:"

# KEYS: the idempotency record. ARGV: the claim's token. Deletes only our own claim.
_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def record_key(tenant: str, path: str, key: str) -> str:
    """Where a key lives: one per tenant, path and key, so that the same key on
    ``/v1/jobs`` and ``/v1/batches`` names two independent requests (docs/api.md)."""
    # hashed: the client's key may be long and hold any visible character; the path and
    # the key are framed by a NUL, which neither can hold
    digest = hashlib.sha256(f"{path}\0{key}".encode()).hexdigest()
    return f"{IDEM_PREFIX}{tenant}:{digest}"


class IdempotencyRecords:
    """The records on a ``decode_responses`` Redis client. Every method but
    :meth:`release` raises Unavailable when Redis does not answer."""

    def __init__(self, client: Any) -> None:
        self.r = client
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_store(cls, store: RedisStore) -> IdempotencyRecords:
        """The records on the job store's Redis."""
        return cls(store.r)

    def claim(self, name: str, fingerprint: str, token: str, ttl: int) -> bool:
        """Mark ``name`` pending for ``token`` unless it exists; True when claimed.
        ``ttl`` (seconds) ends a claim whose process died."""
        pending = json.dumps({"state": "pending", "fingerprint": fingerprint, "token": token})
        with redis_errors():
            return bool(self.r.set(name, pending, nx=True, ex=ttl))

    def read(self, name: str) -> dict[str, Any] | None:
        """The record (pending or done), or None when there is none."""
        with redis_errors():
            raw = self.r.get(name)
        return None if raw is None else dict(json.loads(raw))

    def finish(
        self,
        name: str,
        fingerprint: str,
        resource_id: str,
        location: str,
        status: int,
        ttl: int,
    ) -> None:
        """Record what the claimed request created, for ``ttl`` seconds."""
        record = {
            "state": "done",
            "fingerprint": fingerprint,
            "id": resource_id,
            "location": location,
            "status": status,
        }
        with redis_errors():
            self.r.set(name, json.dumps(record), ex=ttl)

    def release(self, name: str, token: str) -> None:
        """Give back the claim ``token`` holds (never another's). Never raises: a Redis
        failure leaves the claim to expire by its TTL."""
        with contextlib.suppress(redis.RedisError):
            self._release(keys=[name], args=[token])
