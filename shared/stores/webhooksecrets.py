"""Each tenant's webhook signing secret, in Redis: the store side of webhook signing
(shared/net/webhooks.py makes the secrets, signs the events and delivers them).

Used by the API and the worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis

from shared.errors import Unavailable
from shared.net.webhooks import new_secret
from shared.redis.errors import redis_errors

if TYPE_CHECKING:
    from shared.stores.jobs import RedisStore

#: how errors name this store (shared/redis/errors.py)
_WHAT = "the webhook secret store"


class WebhookSecrets:
    """Each tenant's current signing secret, in Redis (key ``cutout:webhook_secret:<tenant>``).

    Secrets do not expire. Redis failures surface as :class:`Unavailable`.
    """

    PREFIX = "cutout:webhook_secret:"

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client  # works with decode_responses on or off

    @classmethod
    def from_store(cls, store: RedisStore) -> WebhookSecrets:
        """The secrets on the job store's Redis."""
        return cls(store.r)

    def _key(self, tenant: str) -> str:
        return self.PREFIX + tenant

    def get(self, tenant: str) -> str | None:
        """The tenant's secret, or None if it has none yet."""
        with redis_errors(_WHAT):
            value = self.r.get(self._key(tenant))
        return _text(value)

    def get_or_create(self, tenant: str) -> str:
        """The tenant's secret, made on first use. Concurrent first calls agree (SET NX)."""
        key = self._key(tenant)
        with redis_errors(_WHAT):
            for _ in range(3):
                candidate = new_secret()
                if self.r.set(key, candidate, nx=True):
                    return candidate
                existing = _text(self.r.get(key))
                if existing is not None:  # None only if deleted in between: try again
                    return existing
        raise Unavailable("the webhook secret could not be stored")

    def rotate(self, tenant: str) -> str:
        """Replace the tenant's secret with a new one and return it; the old one is gone."""
        secret = new_secret()
        with redis_errors(_WHAT):
            self.r.set(self._key(tenant), secret)
        return secret


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("ascii") if isinstance(value, bytes) else value
