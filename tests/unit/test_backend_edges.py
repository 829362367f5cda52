"""Redis and S3 are reached through shared/ only, and their errors are translated once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import redis

from shared.errors import Unavailable
from shared.redis.errors import redis_errors

ROOT = Path(__file__).resolve().parents[2]
VENDOR_MODULES = {"redis", "boto3", "botocore"}


def vendor_use(path: Path) -> list[str]:
    """Imports of redis/boto3/botocore, and reaches for the raw clients (``store.r``,
    ``storage.client``), in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in VENDOR_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in VENDOR_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Attribute):
            value = node.value
            owner = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
            if (owner, node.attr) in (("store", "r"), ("storage", "client")):
                found.append(f"{owner}.{node.attr} (line {node.lineno})")
    return found


def test_only_shared_reaches_redis_and_s3_clients() -> None:
    offenders = {
        str(path.relative_to(ROOT)): use
        for side in ("api", "worker", "cutout")
        for path in sorted((ROOT / side).rglob("*.py"))
        if (use := vendor_use(path))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (redis.ConnectionError("refused"), "the job store (Redis) is unavailable"),
        (redis.TimeoutError("slow"), "the job store (Redis) is unavailable"),
        (redis.BusyLoadingError("loading"), "the job store (Redis) is loading its data"),
        # a refused command: out of memory under noeviction, a read-only replica
        (redis.exceptions.OutOfMemoryError("OOM"), "the job store (Redis) is unavailable"),
        (redis.ReadOnlyError("READONLY"), "the job store (Redis) is unavailable"),
    ],
)
def test_redis_errors_become_unavailable(error: redis.RedisError, message: str) -> None:
    with pytest.raises(Unavailable) as info, redis_errors():
        raise error
    assert info.value.message == message
    assert (info.value.code, info.value.status, info.value.transient) == (
        "unavailable",
        503,
        True,
    )
    assert info.value.__cause__ is error


def test_redis_errors_name_their_store_and_let_watch_conflicts_through() -> None:
    expected = r"^the webhook secret store \(Redis\) is unavailable$"
    with pytest.raises(Unavailable, match=expected), redis_errors("the webhook secret store"):
        raise redis.ConnectionError("down")
    with pytest.raises(redis.WatchError), redis_errors():
        raise redis.WatchError("raced")
    with pytest.raises(KeyError), redis_errors():
        raise KeyError("not a Redis error")
