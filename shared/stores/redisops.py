"""The base of the worker store's parts (shared/stores/sweeps.py, shared/stores/fair.py,
shared/stores/customlines.py): the Redis client they run on, Lua scripts registered once per
part, and the one error translation for their methods (:func:`translated`).

Used by the worker only."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from shared.redis.errors import redis_errors

P = ParamSpec("P")
R = TypeVar("R")


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` inside the one Redis error translation (shared/redis/errors.py)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with redis_errors():
            return method(*args, **kwargs)

    return wrapper


class RedisOps:
    """A part of the store on its client ``r``, with :meth:`_script`."""

    def __init__(self, client: Any) -> None:
        # decode_responses=True clients; typed loosely since redis-py's stubs assume bytes
        self.r: Any = client
        self._scripts: dict[str, Any] = {}

    def _script(self, source: str) -> Any:
        """``source`` registered on this part's client (EVALSHA, loaded on first use)."""
        if source not in self._scripts:
            self._scripts[source] = self.r.register_script(source)
        return self._scripts[source]
