"""Retries of transient failures (the store or storage down): how many, and how long
between them. Imported by every task module, so it imports none of them."""

from __future__ import annotations

import random

TRANSIENT_RETRIES = 8
BACKOFF_CAP = 60.0


def backoff(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: exponential with "equal jitter".

    The base doubles per retry (1, 2, 4 … seconds, capped at :data:`BACKOFF_CAP`) and the
    delay is drawn uniformly from half the base to the base. Not full jitter (0 to the
    base): a retry that fires at once hits a store that has just failed, and retries of
    many tasks spread over half the base are already apart; the lower bound also keeps
    the time the retries cover predictable (at least half the sum of the bases).
    """
    base = min(BACKOFF_CAP, 2.0**retries)
    return random.uniform(0.5, 1.0) * base
