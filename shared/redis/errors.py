"""The one translation of redis-py's errors into ours, used by every Redis store in shared/.

Callers outside ``shared/`` never see a redis-py exception: a Redis that does not answer,
times out, is still loading its data or refuses a command (out of memory, a read-only
replica after a failover) is :class:`~shared.errors.Unavailable` (503 ``unavailable``,
transient: tasks retry it).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import redis

from shared.errors import Unavailable
from shared.redis import sentinel

#: the default name a message gives the Redis it could not reach
JOB_STORE = "the job store"


@contextlib.contextmanager
def redis_errors(what: str = JOB_STORE) -> Iterator[None]:
    """Turn redis-py errors raised in the body into :class:`Unavailable` naming ``what``.

    ``WatchError`` (an optimistic transaction lost its race) is not a failure of Redis:
    it passes through for the caller to retry.
    """
    try:
        yield
    except redis.WatchError:
        raise
    except redis.BusyLoadingError as exc:
        raise Unavailable(f"{what} (Redis) is loading its data") from exc
    except redis.RedisError as exc:
        raise Unavailable(f"{what} (Redis) is unavailable{_tls_reason(exc)}") from exc


def _tls_reason(exc: Exception) -> str:
    """`` (TLS: certificate verify failed)`` when the TLS handshake failed (a wrong CA
    file, a client certificate the server refused; shared/redis/tls.py), else nothing."""
    match = re.search(r"\[SSL: ([A-Z0-9_]+)\]", str(exc))
    return f" (TLS: {match.group(1).lower().replace('_', ' ')})" if match else ""


def connect(url: str, *, health_check_interval: int = 0) -> redis.Redis:
    """A ``decode_responses`` client of ``url`` with our socket timeouts (connects lazily).

    A ``sentinel://`` URL gives a client of the primary its Sentinels name
    (shared/redis/sentinel.py): after a failover it reconnects to the new one."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "health_check_interval": health_check_interval,
    }
    if sentinel.is_sentinel(url):
        return sentinel.client(url, **options)
    return redis.Redis.from_url(url, **options)


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether the Redis at ``url`` answers a PING within ``timeout`` seconds."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if sentinel.is_sentinel(url):
        client = sentinel.client(url, **options)
    else:
        client = redis.Redis.from_url(url, **options)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
