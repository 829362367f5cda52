"""Custom models: the local store in the model home, and fetched, verified serving copies.

Local store (``cutout tune``, ``cutout models add``): ``<home>/custom/<name>.onnx`` with
its record ``<name>.json``. A file is only loaded when its sha256 equals the record's.

Served models (``POST /v1/models``): the record lives in Redis and the file in the
service's bucket (:mod:`shared.stores.models`); a worker streams it on first use into
``<home>/registry/<sha256>.onnx`` (content-addressed, so a re-registered name never
meets a stale copy), verifies the sha256 before and after caching, and never loads a file
that does not match (:class:`~shared.onnx.modelfile.ModelIntegrityError`). A job serves the
sha256 it was submitted with. The cache is bounded (:class:`ModelCache`).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from shared.atomicfile import atomic_file, atomic_write
from shared.errors import CutoutError, InvalidModel
from shared.onnx.modelfile import (
    ModelFileError,
    ModelIntegrityError,
    UnknownModel,
    check_io,
    check_name,
    check_record,
    sha256_of,
)
from worker.serving import SERVING_MODEL_SHA256, SERVING_TENANT

T = TypeVar("T")


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, data)


class LocalModels:
    """Custom models in ``<home>/custom``."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "custom"

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.onnx"

    def record_path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def add(self, name: str, data: bytes, record: dict[str, Any]) -> dict[str, Any]:
        """Check and store a model; raises ModelFileError (name, I/O or record)."""
        check_name(name)
        check_io(data)
        record = check_record({**record, "name": name}, sha256=sha256_of(data))
        _atomic_write(self.path(name), data)
        _atomic_write(self.record_path(name), json.dumps(record, indent=2).encode())
        return record

    def record(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.record_path(name).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.json")) if self.dir.is_dir() else []

    def remove(self, name: str) -> bool:
        existed = self.record_path(name).exists()
        self.path(name).unlink(missing_ok=True)
        self.record_path(name).unlink(missing_ok=True)
        return existed

    def resolve(self, name: str) -> Path:
        """The verified file of ``name``; raises UnknownModel, ModelIntegrityError."""
        record = self.record(name)
        path = self.path(name)
        if record is None or not path.exists():
            raise UnknownModel(f"unknown model {name!r}: not in {self.dir}")
        digest = sha256_of(path)
        if digest != record.get("sha256"):
            raise ModelIntegrityError(
                f"model {name}: file sha256 {digest} does not match its record's "
                f"{record.get('sha256')}; not loaded"
            )
        return path


#: a worker's cache of served models (CUTOUT_CUSTOM_MODEL_CACHE_FILES / _BYTES defaults)
CACHE_FILES = 16
CACHE_BYTES = 2_000_000_000
#: how often a worker's lookups prune the cache of models no longer registered
PRUNE_SECONDS = 60.0
#: a temporary file of a fetch older than this was left by a killed process
_STALE_PART_SECONDS = 3600.0


class ModelCache:
    """``<home>/registry/<sha256>.onnx``: verified copies of served models, bounded.

    At most ``max_files`` files and ``max_bytes`` bytes; past either, the least recently
    used go first (a use touches its file's mtime). A copy is also removed when no
    registered model has its sha256 any more (:meth:`prune` with the registered set).
    Pool children share the folder: every step tolerates another one's removal.
    """

    def __init__(self, home: Path, max_files: int = CACHE_FILES, max_bytes: int = CACHE_BYTES):
        self.dir = Path(home) / "registry"
        self.max_files = max(1, max_files)
        self.max_bytes = max(1, max_bytes)

    def path(self, sha256: str) -> Path:
        return self.dir / f"{sha256}.onnx"

    def verified(
        self,
        name: str,
        sha256: str,
        read: Callable[[], Iterable[bytes]],
        registered: Callable[[], set[str]] | None = None,
    ) -> Path:
        """The cached, verified copy, fetched with ``read`` (chunks) when missing.

        Raises ModelIntegrityError when the fetched bytes do not have ``sha256``,
        InvalidModel when they are no servable model (nothing is cached then), and
        whatever ``read`` raises. After a fetch the cache is pruned (``registered``: the
        sha256s still registered).
        """
        path = self.path(sha256)
        if path.exists() and sha256_of(path) == sha256:
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used
            return path
        with atomic_file(path) as out:
            digest = hashlib.sha256()
            with out.tmp.open("wb") as f:
                for chunk in read():
                    digest.update(chunk)
                    f.write(chunk)
            if digest.hexdigest() != sha256:
                raise ModelIntegrityError(
                    f"model {name}: the stored file's sha256 {digest.hexdigest()} does not "
                    f"match the registered {sha256}; refused, not loaded"
                )
            try:
                check_io(out.tmp)
            except ModelFileError as exc:
                # the bytes are the registered ones but cannot be served (registered
                # before the bounded check refused such graphs): the model's fault
                raise InvalidModel(f"model {name}: {exc}") from None
            out.commit()
        self.prune(keep=sha256, registered=registered() if registered else None)
        return path

    def forget(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def prune(self, keep: str | None = None, registered: set[str] | None = None) -> list[str]:
        """Remove copies no model is registered with (when ``registered`` is given) and
        the least recently used past the bounds; ``keep`` stays. Returns the removed."""
        entries = []
        for path in self.dir.glob("*.onnx") if self.dir.is_dir() else []:
            with contextlib.suppress(OSError):
                info = path.stat()
                entries.append((info.st_mtime, info.st_size, path))
        removed = []
        count = total = 0
        for _, size, path in sorted(entries, key=lambda e: e[0], reverse=True):
            sha = path.stem
            gone = registered is not None and sha not in registered
            over = count + 1 > self.max_files or total + size > self.max_bytes
            if sha != keep and (gone or over):
                path.unlink(missing_ok=True)
                removed.append(sha)
                continue
            count, total = count + 1, total + size
        self._remove_stale_parts()
        return removed

    def _remove_stale_parts(self) -> None:
        cutoff = time.time() - _STALE_PART_SECONDS
        for part in self.dir.glob(".*.part") if self.dir.is_dir() else []:
            with contextlib.suppress(OSError):
                if part.stat().st_mtime < cutoff:
                    part.unlink()


class LRU(Generic[T]):
    """At most ``size`` values by key, the least recently used dropped first (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: collections.OrderedDict[str, T] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: T) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)


class CustomModels:
    """How an engine finds custom models: ``lookup(name)`` → (cache key, materialize).

    The key (the file's sha256) is cheap to get; ``materialize()`` returns the verified
    file's path and may fetch, hash and write. Raises UnknownModel for an unknown name.
    """

    def lookup(self, name: str) -> tuple[str, Callable[[], Path]]:
        raise NotImplementedError


class LocalResolver(CustomModels):
    """Custom models of the local store (``cutout remove``, ``cutout eval``)."""

    def __init__(self, home: Path) -> None:
        self.models = LocalModels(home)

    def lookup(self, name: str) -> tuple[str, Callable[[], Path]]:
        record = self.models.record(name)
        if record is None:
            raise UnknownModel(f"unknown model {name!r}: not in {self.models.dir}")
        return str(record.get("sha256")), lambda: self.models.resolve(name)


class RegistryResolver(CustomModels):
    """Custom models registered with the service (a worker): record from Redis for the
    serving tenant, file from the bucket, verified and cached in ``<home>/registry``.

    A job pins the sha256 its model had at submit (worker/serving.py): exactly that file is
    served. When the name now means another file (registered again) or nothing (deleted),
    the job fails with ``model_unavailable`` and the pinned copy leaves the cache (unless
    another record still names it). Lookups prune the cache at most every
    :data:`PRUNE_SECONDS`, and after each fetch, of copies no record names any more.
    """

    def __init__(
        self,
        home: Path,
        registry: Any,
        *,
        max_files: int = CACHE_FILES,
        max_bytes: int = CACHE_BYTES,
    ) -> None:
        self.home = Path(home)
        self.registry = registry  # shared.stores.models.ModelRegistry
        self.cache = ModelCache(self.home, max_files, max_bytes)
        self._pruned_at = 0.0

    def lookup(self, name: str) -> tuple[str, Callable[[], Path]]:
        tenant = SERVING_TENANT.get()
        record = self.registry.resolve(tenant, name) if tenant is not None else None
        pin = SERVING_MODEL_SHA256.get()
        if pin is not None and (record is None or record.get("sha256") != pin):
            self._drop(pin)
            change = "removed" if record is None else "registered again with another file"
            raise UnknownModel(
                f"model {name!r} was {change} after this job was submitted; the version "
                f"it was submitted with (sha256 {pin}) is gone. Submit it again"
            )
        if record is None:
            raise UnknownModel(f"model {name!r} is not registered (or was removed)")
        self._maybe_prune()
        sha = str(record.get("sha256"))

        def read() -> Iterator[bytes]:
            from shared.errors import NotFound

            try:
                yield from self.registry.stream_file(record)
            except NotFound:
                raise UnknownModel(f"model {name!r}: its file is gone from storage") from None

        return sha, lambda: self.cache.verified(
            name, sha, read, registered=self.registry.registered_sha256s
        )

    def _drop(self, sha256: str) -> None:
        """Forget a copy no job may use any more, unless a record still names it."""
        with contextlib.suppress(CutoutError):
            if sha256 not in self.registry.registered_sha256s():
                self.cache.forget(sha256)

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = now
        with contextlib.suppress(CutoutError):
            self.cache.prune(registered=self.registry.registered_sha256s())
