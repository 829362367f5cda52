"""Abuse limits per tenant: a request-rate token bucket and a cap on queued jobs.

**Rate** (``CUTOUT_RATE_LIMIT`` tokens per second, ``CUTOUT_RATE_BURST`` capacity): one
bucket per tenant in Redis (shared/stores/ratelimits.py), refilled by one Lua script from the
time elapsed on the *Redis* clock (so several API processes on machines with skewed
clocks share one fair bucket). Every authenticated ``/v1`` and ``/api`` request costs one
token; health, metrics, the OpenAPI document and the web page are never limited. Each
limited response carries ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``
(seconds until the bucket is full again) and ``RateLimit-Policy``; a refused one is 429
``rate_limited`` with ``Retry-After`` (seconds until the next token).

**Queue cap** (``CUTOUT_MAX_QUEUED_PER_TENANT``): each tenant's queued and processing jobs
are the members of a Redis set (``RedisStore.reserve_active``); intake reserves the new
job ids all-or-nothing before any input is stored, and the store's transition script
removes an id in the same atomic step that makes its job terminal. Over the cap: 429
``queue_full``. Batches reserve all their items at once.

If Redis does not answer, the rate limit lets the request through (the view then answers
503 on its own); the queue cap never does, since a job cannot be created without Redis.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request

from api.auth import PROTECTED_PREFIXES
from shared.errors import QueueFull, RateLimited, Unavailable
from shared.stores.ratelimits import TokenBuckets

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger("cutout.api")

QUEUE_FULL_RETRY_AFTER = 10  # seconds: a guess; jobs finish at the workers' pace


@dataclass(frozen=True)
class Decision:
    """One request's outcome against its tenant's bucket."""

    allowed: bool
    tokens: float  # left after this request
    rate: float
    burst: int

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.tokens))

    @property
    def reset(self) -> int:
        """Seconds until the bucket is full again."""
        return max(0, math.ceil((self.burst - self.tokens) / self.rate))

    @property
    def retry_after(self) -> int:
        """Seconds until one token is there (at least 1)."""
        return max(1, math.ceil((1 - self.tokens) / self.rate))

    def headers(self) -> dict[str, str]:
        window = max(1, math.ceil(self.burst / self.rate))
        return {
            "RateLimit-Limit": str(self.burst),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.burst};w={window}",
        }


class RateLimiter:
    """Token buckets per tenant (shared/stores/ratelimits.py: one Lua script, atomic per
    request)."""

    def __init__(self, buckets: TokenBuckets, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.buckets = buckets

    def take(self, tenant: str, cost: int = 1) -> Decision:
        """Take ``cost`` tokens from ``tenant``'s bucket; Unavailable when Redis is down."""
        allowed, tokens = self.buckets.take(tenant, self.rate, self.burst, cost)
        return Decision(allowed, tokens, self.rate, self.burst)


def register(app: Flask, services: Services) -> None:
    """Install the per-tenant rate limit on ``/v1`` and ``/api`` (after authentication)."""
    settings = services.settings
    limiter = RateLimiter(services.rate_limits, settings.rate_limit, settings.rate_burst)

    @app.before_request
    def limit_rate() -> None:
        tenant = g.get("tenant")
        if tenant is None or not request.path.startswith(PROTECTED_PREFIXES):
            return
        try:
            decision = limiter.take(tenant)
        except (Unavailable, OSError) as exc:
            # fail open: the view itself answers 503 if Redis is really gone
            log.warning("rate limit unavailable: %s", type(exc).__name__)
            return
        g.rate_limit = decision
        if not decision.allowed:
            error = RateLimited(
                f"this API key sent more than {settings.rate_burst} requests at once or "
                f"{settings.rate_limit:g} per second; retry after {decision.retry_after}s",
            )
            error.headers = {"Retry-After": str(decision.retry_after)}  # type: ignore[attr-defined]
            raise error

    @app.after_request
    def rate_limit_headers(response: Response) -> Response:
        decision = g.get("rate_limit")
        if decision is not None:
            for name, value in decision.headers().items():
                response.headers[name] = value
        return response


def reserve_queue(services: Services, tenant: str, job_ids: list[str]) -> None:
    """Count ``job_ids`` against the tenant's queue cap; 429 ``queue_full`` when over it.

    All or nothing (a batch is accepted whole or not at all). Pair with
    :func:`release_queue` when the jobs are then not created; :func:`queue_slots` does both.
    """
    cap = services.settings.max_queued_per_tenant
    ok, size = services.store.reserve_active(tenant, job_ids, cap)
    if not ok:
        error = QueueFull(
            f"this tenant has {size} jobs queued or processing; the limit is {cap}"
            + (f" and this request adds {len(job_ids)}" if len(job_ids) > 1 else ""),
            queued=size,
            limit=cap,
        )
        error.headers = {"Retry-After": str(QUEUE_FULL_RETRY_AFTER)}  # type: ignore[attr-defined]
        raise error


def release_queue(services: Services, tenant: str, job_ids: list[str]) -> None:
    """Give back reservations of jobs that were not created (never raises)."""
    try:
        services.store.release_active(tenant, job_ids)
    except Unavailable:
        # the set's TTL (the retention) ends a leaked reservation at the latest
        log.warning("could not release %d queue reservations", len(job_ids))


@contextlib.contextmanager
def queue_slots(services: Services, tenant: str, job_ids: list[str]) -> Iterator[None]:
    """Reserve ``job_ids`` for the body; released again if the body raises.

    Use around storing the inputs and ``submit``: a job that was created and then failed
    (enqueue refused) already left the set through its transition, so releasing it again
    is harmless.
    """
    reserve_queue(services, tenant, job_ids)
    try:
        yield
    except BaseException:
        release_queue(services, tenant, job_ids)
        raise
