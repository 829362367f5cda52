"""The base of the store's operation mixins (shared/fairstate.py, shared/sweepstate.py):
the Redis client they run on, Lua scripts registered once per store, and the one error
translation for their methods (:func:`translated`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from shared.redis_errors import redis_errors

P = ParamSpec("P")
R = TypeVar("R")


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` inside the one Redis error translation (shared/redis_errors.py)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with redis_errors():
            return method(*args, **kwargs)

    return wrapper


class RedisOps:
    """Gives a mixin the store's client ``r`` and :meth:`_script`."""

    r: Any
    retention: int

    def _script(self, source: str) -> Any:
        """``source`` registered on this store's client (EVALSHA, loaded on first use)."""
        scripts: dict[str, Any] = self.__dict__.setdefault("_scripts", {})
        if source not in scripts:
            scripts[source] = self.r.register_script(source)
        return scripts[source]
