"""Identifiers and timestamps used in records and storage keys."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
ID_RE = re.compile(r"^(job|bat|upl)_[0-9a-z]{26}$")


def new_id(prefix: str) -> str:
    """``<prefix>_`` (``job``, ``bat``, ``upl``, ``msg``) + 26 base32 chars: 48 bits of
    milliseconds, then 80 random bits.

    Time-ordered, so ids of one tenant sort by creation; unguessable, so an id alone
    grants nothing (access is still checked against the tenant).
    """
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def new_token() -> str:
    """An unguessable token (a lock's owner): 16 hex characters, 64 random bits."""
    return secrets.token_hex(8)


def valid_id(value: str, prefix: str) -> bool:
    return bool(ID_RE.match(value)) and value.startswith(prefix + "_")


def now_iso() -> str:
    """Current UTC time as RFC 3339 with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
