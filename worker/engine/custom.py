"""Custom models: the local store in the model home, and fetched, verified serving copies.

Local store (``cutout tune``, ``cutout models add``): ``<home>/custom/<name>.onnx`` with
its record ``<name>.json``. A file is only loaded when its sha256 equals the record's.

Served models (``POST /v1/models``): the record lives in Redis and the file in the
service's bucket (:mod:`shared.modelstore`); a worker fetches it on first use into
``<home>/registry/<sha256>.onnx`` (content-addressed, so a re-registered name never
meets a stale copy), verifies the sha256 before and after caching, and never loads a file
that does not match (:class:`~shared.modelfile.ModelIntegrityError`).
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from shared.atomicfile import atomic_write
from shared.modelfile import (
    ModelFileError,
    ModelIntegrityError,
    UnknownModel,
    check_io,
    check_name,
    check_record,
    sha256_of,
)
from worker.serving import SERVING_TENANT

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


def cache_verified(home: Path, name: str, sha256: str, read: Callable[[], bytes]) -> Path:
    """The cached, verified copy of a served model, fetched with ``read`` when missing.

    Raises ModelIntegrityError when the fetched bytes do not have ``sha256`` (nothing is
    cached then), and whatever ``read`` raises (StorageError, UnknownModel).
    """
    path = Path(home) / "registry" / f"{sha256}.onnx"
    if path.exists() and sha256_of(path) == sha256:
        return path
    data = read()
    digest = sha256_of(data)
    if digest != sha256:
        raise ModelIntegrityError(
            f"model {name}: the stored file's sha256 {digest} does not match the "
            f"registered {sha256}; refused, not loaded"
        )
    try:
        check_io(data)
    except ModelFileError as exc:
        raise ModelIntegrityError(f"model {name}: {exc}") from None
    _atomic_write(path, data)
    return path


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
    serving tenant, file from the bucket, verified and cached in ``<home>/registry``."""

    def __init__(self, home: Path, registry: Any) -> None:
        self.home = Path(home)
        self.registry = registry  # shared.modelstore.ModelRegistry

    def lookup(self, name: str) -> tuple[str, Callable[[], Path]]:
        tenant = SERVING_TENANT.get()
        record = self.registry.resolve(tenant, name) if tenant is not None else None
        if record is None:
            raise UnknownModel(f"model {name!r} is not registered (or was removed)")
        sha = str(record.get("sha256"))

        def read() -> bytes:
            from shared.errors import NotFound

            try:
                return bytes(self.registry.read_file(record))
            except NotFound:
                raise UnknownModel(f"model {name!r}: its file is gone from storage") from None

        return sha, lambda: cache_verified(self.home, name, sha, read)
