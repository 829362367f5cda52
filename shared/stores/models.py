"""Registered custom models of a service: records in Redis, files in the bucket.

A model belongs to a tenant (only that tenant sees and uses it) or is global (registered
by an operator tenant, ``CUTOUT_OPERATOR_TENANTS``). Records are Redis hashes, one per
scope, ``cutout:models:global`` and ``cutout:models:tenant:<tenant>``, name → JSON
record (the uploaded record plus ``scope``, ``key``, ``registered_at``); they do not
expire. The file is stored once per content at ``models/<scope>/<name>/<sha256>.onnx``.

A name resolves for a tenant to its own model first, then a global one. The API checks
``model=NAME`` against this at submit and pins the record's sha256 on the job; the worker
serves exactly that file (worker/engine/custom.py), fetched and verified on first use.

Quotas (``CUTOUT_MAX_MODELS_PER_TENANT``, ``CUTOUT_MAX_MODEL_STORAGE_BYTES``) hold per
scope (each tenant, and global). A registration reserves its name and bytes in one Lua
script before its file is stored: the script counts the scope's records and the
reservations of uploads still in flight (``cutout:modelquota:<scope>``, a sorted set by
deadline, so that an API process that dies mid-upload frees its share within
:data:`RESERVATION_SECONDS`), so two concurrent uploads cannot both slip past a limit. A
name registered again counts once, with its new size.

``cutout:modelindex`` is a set of ``"<sha256> <scope> <name>"``, one per record, kept by
the same scripts that write records: a worker prunes its cache of copies no record names
(:meth:`ModelRegistry.registered_sha256s`) without reading every record.

Used by the API and the worker.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import IO, Any

from shared.errors import CutoutError, NotFound
from shared.ids import now_iso
from shared.s3.keys import model_file_key
from shared.s3.storage import Storage
from shared.stores.jobs import PREFIX, RedisStore, _translated

GLOBAL = "global"
#: how long a registration's reservation holds while its file is stored
RESERVATION_SECONDS = 900

# KEYS: the scope's records, its reservations; ARGV: name, bytes, max models, max bytes,
# now, deadline, token. Returns {1, models, bytes} (reserved) or {0, models, bytes}
# (refused), counting the name being registered once, at its new size.
RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
local name, size = ARGV[1], tonumber(ARGV[2])
local seen, count, used = {}, 1, size
seen[name] = true
local records = redis.call('HGETALL', KEYS[1])
for i = 1, #records, 2 do
  if not seen[records[i]] then
    seen[records[i]] = true
    count = count + 1
    local ok, record = pcall(cjson.decode, records[i + 1])
    if ok and type(record) == 'table' and tonumber(record['bytes']) then
      used = used + tonumber(record['bytes'])
    end
  end
end
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local bytes, other = string.match(member, '^[^|]*|(%d+)|(.*)$')
  if bytes then
    used = used + tonumber(bytes)
    if not seen[other] then
      seen[other] = true
      count = count + 1
    end
  end
end
if count > tonumber(ARGV[3]) or used > tonumber(ARGV[4]) then
  return {0, count, used}
end
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[7] .. '|' .. ARGV[2] .. '|' .. name)
redis.call('EXPIREAT', KEYS[2], math.ceil(tonumber(ARGV[6])))
return {1, count, used}
"""
# the index member of a record: "<sha256> <scope> <name>" (neither has a space)
_MEMBER = """
local function member(raw, scope, name)
  local ok, record = pcall(cjson.decode, raw)
  if ok and type(record) == 'table' and type(record['sha256']) == 'string' then
    return record['sha256'] .. ' ' .. scope .. ' ' .. name
  end
end
"""
# KEYS: records, reservations, index; ARGV: name, record, reservation, scope. Returns the
# old record. A record this script cannot read (cjson) is refused before anything is
# written: stored, it would count no bytes against the quota and have no index member.
COMMIT = (
    _MEMBER
    + """
local new = member(ARGV[2], ARGV[4], ARGV[1])
if not new then return redis.error_reply('ERR the model record is not JSON Redis can read') end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local gone = member(old, ARGV[4], ARGV[1])
  if gone then redis.call('SREM', KEYS[3], gone) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], new, '-')
return old
"""
)
# KEYS: records, index; ARGV: name, scope. Returns the removed record (nil: none).
REMOVE = (
    _MEMBER
    + """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HDEL', KEYS[1], ARGV[1])
  local gone = member(old, ARGV[2], ARGV[1])
  if gone then redis.call('SREM', KEYS[2], gone) end
end
return old
"""
)


class ModelQuotaExceeded(CutoutError):
    """A registration that would take a scope past its model count or stored bytes."""

    code = "model_quota_exceeded"
    status = 422
    title = "The tenant's custom model quota is used up"


def scope_key(scope: str) -> str:
    return f"{PREFIX}models:{scope}"


def tenant_scope(tenant: str) -> str:
    return f"tenant:{tenant}"


#: every registered model's "<sha256> <scope> <name>" (and "-", so that it exists once
#: built): what a worker's cache prune reads instead of every record
INDEX_KEY = f"{PREFIX}modelindex"


def reservations_key(scope: str) -> str:
    return f"{PREFIX}modelquota:{scope}"


def file_key(scope: str, name: str, sha256: str) -> str:
    return model_file_key(scope, name, sha256)


def quota_message(scope: str, models: int, used: int, max_models: int, max_bytes: int) -> str:
    who = "global models" if scope == GLOBAL else "your models"
    if models > max_models:
        return (
            f"{who} would number {models}, over the limit of {max_models} "
            "(CUTOUT_MAX_MODELS_PER_TENANT): delete one first (DELETE /v1/models/NAME)"
        )
    return (
        f"{who} would take {used} bytes, over the limit of {max_bytes} "
        "(CUTOUT_MAX_MODEL_STORAGE_BYTES): delete one first (DELETE /v1/models/NAME)"
    )


class ModelRegistry:
    """Custom model records (Redis, a ``decode_responses`` client) and files (storage)."""

    def __init__(self, redis_client: Any, storage: Storage) -> None:
        self.r = redis_client
        self.storage = storage
        self._reserve = redis_client.register_script(RESERVE)
        self._commit = redis_client.register_script(COMMIT)
        self._remove = redis_client.register_script(REMOVE)

    @classmethod
    def from_store(cls, store: RedisStore, storage: Storage) -> ModelRegistry:
        """The registry on the job store's Redis (its records live beside the jobs)."""
        return cls(store.r, storage)

    def register(
        self,
        scope: str,
        name: str,
        data: bytes | IO[bytes],
        record: dict[str, Any],
        *,
        max_models: int,
        max_bytes: int,
    ) -> dict[str, Any]:
        """Reserve the quota, store the file, then the record (so a visible record always
        has its file); ModelQuotaExceeded when the scope has no room.

        ``record`` must already be checked (shared.onnx.modelfile.check_record) and carry the
        file's ``bytes``; ``data`` is the file (bytes, or a binary file at its start,
        streamed). Returns the stored record. A name registered again in the same scope
        is replaced and counts once.
        """
        member = self._reserve_quota(scope, name, int(record["bytes"]), max_models, max_bytes)
        key = file_key(scope, name, record["sha256"])
        stored = {**record, "name": name, "scope": scope, "key": key, "registered_at": now_iso()}
        try:
            self.storage.put(key, data, "application/octet-stream")
            with _translated():
                old = self._commit(
                    keys=[scope_key(scope), reservations_key(scope), INDEX_KEY],
                    args=[name, json.dumps(stored), member, scope],
                )
        except BaseException:
            with contextlib.suppress(Exception), _translated():
                self.r.zrem(reservations_key(scope), member)
            raise
        if old:
            previous = json.loads(old)
            if previous.get("key") != key:
                self._delete_file(previous.get("key"))
        return stored

    def _reserve_quota(
        self, scope: str, name: str, size: int, max_models: int, max_bytes: int
    ) -> str:
        """Reserve ``name`` at ``size`` bytes in ``scope``: the reservation's member."""
        token = uuid.uuid4().hex
        now = time.time()
        with _translated():
            ok, models, used = self._reserve(
                keys=[scope_key(scope), reservations_key(scope)],
                args=[name, size, max_models, max_bytes, now, now + RESERVATION_SECONDS, token],
            )
        if not ok:
            raise ModelQuotaExceeded(
                quota_message(scope, int(models), int(used), max_models, max_bytes),
                limit_models=max_models,
                limit_bytes=max_bytes,
            )
        return f"{token}|{size}|{name}"

    def _delete_file(self, key: str | None) -> None:
        if key:
            with contextlib.suppress(NotFound):
                self.storage.delete_prefix(key)

    def get(self, scope: str, name: str) -> dict[str, Any] | None:
        with _translated():
            raw = self.r.hget(scope_key(scope), name)
        return json.loads(raw) if raw else None

    def resolve(self, tenant: str, name: str) -> dict[str, Any] | None:
        """The record ``name`` means for ``tenant``: its own, else a global one."""
        return self.get(tenant_scope(tenant), name) or self.get(GLOBAL, name)

    def visible(self, tenant: str) -> list[dict[str, Any]]:
        """Every record ``tenant`` may use (its own shadow global ones of the same name)."""
        with _translated():
            globals_ = self.r.hgetall(scope_key(GLOBAL))
            own = self.r.hgetall(scope_key(tenant_scope(tenant)))
        merged = {name: json.loads(raw) for name, raw in globals_.items()}
        merged.update({name: json.loads(raw) for name, raw in own.items()})
        return [merged[name] for name in sorted(merged)]

    def remove(self, scope: str, name: str) -> bool:
        """Delete the record, then its file; False when there was none."""
        with _translated():
            raw = self._remove(keys=[scope_key(scope), INDEX_KEY], args=[name, scope])
        if not raw:
            return False
        self._delete_file(json.loads(raw).get("key"))
        return True

    def registered_sha256s(self) -> set[str]:
        """Every sha256 a registered model has (a worker prunes its cache with it)."""
        with _translated():
            members = self.r.smembers(INDEX_KEY)
            if not members:
                members = self._build_index()
        return {m.split(" ", 1)[0] for m in members if m != "-"}

    def _build_index(self) -> set[str]:
        """The index from the records (models registered before it existed): once."""
        members = {"-"}
        for key in self.r.scan_iter(match=f"{PREFIX}models:*", count=1000, _type="hash"):
            scope = key[len(scope_key("")) :]
            for name, raw in self.r.hgetall(key).items():
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    members.add(f"{json.loads(raw)['sha256']} {scope} {name}")
        self.r.sadd(INDEX_KEY, *members)
        return members

    def read_file(self, record: dict[str, Any]) -> bytes:
        """The stored bytes of ``record``'s model (NotFound, StorageError)."""
        return self.storage.get(record["key"])

    def stream_file(self, record: dict[str, Any]) -> Iterator[bytes]:
        """The stored bytes of ``record``'s model in chunks (NotFound, StorageError)."""
        return self.storage.stream(record["key"], chunk_size=1 << 20)
