"""The parsers of ``CUTOUT_*`` values (shared/contract/settings.py): each takes the variable's text
and returns the typed value, or raises ValueError with what is expected (the settings
check adds the variable's name and, unless it is secret, the value)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d`` → seconds (positive)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match:
        raise ValueError(f"expected a duration like 30s, 15m, 12h or 7d, got {text!r}")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    seconds = int(match.group(1)) * unit
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


def parse_size(text: str) -> int:
    """``25MB``, ``10MiB``, ``500k``, ``1000000`` → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(i?)[bB]?\s*", text)
    if not match:
        raise ValueError(f"expected a size like 25MB or 1000000, got {text!r}")
    base = 1024 if match.group(3) else 1000
    power = {"": 0, "k": 1, "m": 2, "g": 3}[match.group(2).lower()]
    value = int(float(match.group(1)) * base**power)
    if value <= 0:
        raise ValueError("must be positive")
    return value


def _size_at_least(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = parse_size(text)
        if value < least:
            raise ValueError(f"must be at least {least // 2**20}MiB")
        return value

    return parse


def parse_pixels(text: str) -> int:
    """``50000000``, ``50M`` or ``50MP`` → pixels."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)[pP]?\s*", text)
    if not match:
        raise ValueError(f"expected a pixel count like 50M or 50000000, got {text!r}")
    value = int(float(match.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[match.group(2).lower()])
    if value <= 0:
        raise ValueError("must be positive")
    return value


def parse_api_keys(text: str) -> dict[str, str]:
    """``tenant:key`` pairs, comma- or newline-separated, or ``@path`` to a file of them.

    Returns key → tenant. Keys must be at least 16 characters and unique.
    """
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read key file {path}: {exc.strerror}") from None
    keys: dict[str, str] = {}
    for raw in re.split(r"[,\n]", text):
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        tenant, sep, key = item.partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise ValueError("each entry must be tenant:key")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", tenant):
            raise ValueError(f"tenant {tenant!r} may only use letters, digits, '_', '.', '-'")
        if len(key) < 16:
            raise ValueError(f"the key for tenant {tenant!r} is shorter than 16 characters")
        if key in keys:
            raise ValueError(f"a key is listed twice (tenants {keys[key]!r} and {tenant!r})")
        keys[key] = tenant
    return keys


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a network like 10.0.0.0/8 or ::1/128") from None
    return tuple(nets)


def parse_schedule(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated seconds, got {text!r}") from None
    if not delays or any(d < 0 for d in delays):
        raise ValueError("expected one or more non-negative delays in seconds")
    return delays


def _folder(text: str) -> Path:
    """A folder, existing or to be made; an existing file is refused (every later use
    would fail with NotADirectoryError)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError("it is a file, not a folder")
    return path


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _positive_number(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("expected a positive number like 50 or 2.5") from None
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _url(text: str) -> str:
    if not re.match(r"^[a-z][a-z0-9+.-]*://", text.strip()):
        raise ValueError("expected a URL")  # _problem shows the value, less a password
    return text.strip()


def _bucket(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", text):
        raise ValueError("must be a valid S3 bucket name (3-63 lowercase letters, digits, . -)")
    return text


def _unit_interval(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("expected a number from 0 to 1 like 0.8") from None
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise ValueError("expected a number from 0 to 1 like 0.8")
    return value
