"""Registered custom models of a service: records in Redis, files in the bucket.

A model belongs to a tenant (only that tenant sees and uses it) or is global (registered
by an operator tenant, ``CUTOUT_OPERATOR_TENANTS``). Records are Redis hashes, one per
scope, ``cutout:models:global`` and ``cutout:models:tenant:<tenant>``, name → JSON
record (the uploaded record plus ``scope``, ``key``, ``registered_at``); they do not
expire. The file is stored once per content at ``models/<scope>/<name>/<sha256>.onnx``.

A name resolves for a tenant to its own model first, then a global one. The API checks
``model=NAME`` against this at submit; the worker fetches and verifies the file on first
use (worker/engine/custom.py).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from shared.errors import NotFound
from shared.ids import now_iso
from shared.storage import Storage
from shared.store import PREFIX, RedisStore, _translated

GLOBAL = "global"


def scope_key(scope: str) -> str:
    return f"{PREFIX}models:{scope}"


def tenant_scope(tenant: str) -> str:
    return f"tenant:{tenant}"


def file_key(scope: str, name: str, sha256: str) -> str:
    return f"models/{scope.replace(':', '/')}/{name}/{sha256}.onnx"


class ModelRegistry:
    """Custom model records (Redis, a ``decode_responses`` client) and files (storage)."""

    def __init__(self, redis_client: Any, storage: Storage) -> None:
        self.r = redis_client
        self.storage = storage

    @classmethod
    def from_store(cls, store: RedisStore, storage: Storage) -> ModelRegistry:
        """The registry on the job store's Redis (its records live beside the jobs)."""
        return cls(store.r, storage)

    def register(
        self, scope: str, name: str, data: bytes, record: dict[str, Any]
    ) -> dict[str, Any]:
        """Store the file, then the record (so a visible record always has its file).

        ``record`` must already be checked (shared.modelfile.check_record); returns the
        stored record. A name registered again in the same scope is replaced.
        """
        key = file_key(scope, name, record["sha256"])
        self.storage.put(key, data, "application/octet-stream")
        stored = {**record, "name": name, "scope": scope, "key": key, "registered_at": now_iso()}
        with _translated():
            old = self.r.hget(scope_key(scope), name)
            self.r.hset(scope_key(scope), name, json.dumps(stored))
        if old:
            previous = json.loads(old)
            if previous.get("key") != key:
                self._delete_file(previous.get("key"))
        return stored

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
            raw = self.r.hget(scope_key(scope), name)
            if not raw:
                return False
            self.r.hdel(scope_key(scope), name)
        self._delete_file(json.loads(raw).get("key"))
        return True

    def read_file(self, record: dict[str, Any]) -> bytes:
        """The stored bytes of ``record``'s model (NotFound, StorageError)."""
        return self.storage.get(record["key"])
