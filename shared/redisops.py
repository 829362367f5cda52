"""The base of the store's operation mixins (shared/fairstate.py, shared/sweepstate.py):
the Redis client they run on, and Lua scripts registered once per store."""

from __future__ import annotations

from typing import Any


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
