"""Redis behind Sentinel: Celery's ``sentinel://`` URL form for every Redis client.

``CUTOUT_REDIS_URL`` and ``CUTOUT_BROKER_URL`` may name the Sentinels instead of one
Redis, in Celery's form::

    sentinel://[:password@]host:port[;sentinel://[:password@]host:port…][/db]

The password (and an ACL user, ``user:password@``) is the Redis primary's; the
primary's name is ``CUTOUT_REDIS_MASTER_NAME``; the Sentinels' own password, when they
have one (``requirepass`` in sentinel.conf), is ``CUTOUT_REDIS_SENTINEL_PASSWORD``.

The settings check (shared/contract/settings.py) calls :func:`problems` and then
:func:`with_sentinel_urls`, which writes the master name and the Sentinels' password
into the query of each sentinel URL (``?master_name=…&sentinel_password=…``), so that a
URL alone says how to reach the primary: shared/redis/errors.py's ``connect()`` and
``answers()`` take URLs only (such a URL carries passwords, as a ``redis://`` one may:
it is never logged). Celery gets :func:`broker_url` (each Sentinel with the credentials
and the database, as kombu reads them from the first part only, and no query) and
:func:`transport_options` (docs/operations.md, "Redis behind Sentinel").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import redis
from redis.sentinel import Sentinel

SCHEME = "sentinel"
DEFAULT_PORT = 26379
MASTER_VARIABLE = "CUTOUT_REDIS_MASTER_NAME"
PASSWORD_VARIABLE = "CUTOUT_REDIS_SENTINEL_PASSWORD"  # noqa: S105 - a name
# Sentinel's own limit on a master name: letters, digits and a few marks, no spaces
_NAME = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _master_name(text: str) -> str:
    name = text.strip()
    if not _NAME.fullmatch(name):
        raise ValueError("expected the primary's name as Sentinel knows it, like mymaster")
    return name


#: the settings of this module (shared/contract/settings.py): variable suffix → (field, parser)
PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "REDIS_MASTER_NAME": ("redis_master_name", _master_name),
    "REDIS_SENTINEL_PASSWORD": ("redis_sentinel_password", str),
}
#: variables whose value an error message never repeats
SECRET = frozenset({"REDIS_SENTINEL_PASSWORD"})


@dataclasses.dataclass(frozen=True)
class SentinelURL:
    """What a ``sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    db: int = 0
    master_name: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str | None) -> bool:
    return bool(url) and str(url).strip().lower().startswith(SCHEME + "://")


def parse(url: str) -> SentinelURL:
    """The Sentinels, credentials, database and master name of ``url`` (ValueError if it
    is no sentinel URL). Credentials may be on any part; the last ``/db`` holds."""
    body, _, query = url.strip().partition("?")
    sentinels: list[tuple[str, int]] = []
    username = password = None
    db = 0
    for part in filter(None, (p.strip() for p in body.split(";"))):
        parts = urlsplit(part)
        if parts.scheme.lower() != SCHEME or not parts.hostname:
            raise ValueError(
                "expected sentinel://[:password@]host:port[;sentinel://host:port…][/db]"
            )
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ValueError(f"a Sentinel's port must be a number, in {part!r}") from None
        sentinels.append((parts.hostname, port))
        username = unquote(parts.username) if parts.username else username
        password = unquote(parts.password) if parts.password is not None else password
        path = parts.path.strip("/")
        if path:
            if not path.isdigit():
                raise ValueError(f"the database must be a number, got {path!r}")
            db = int(path)
    if not sentinels:
        raise ValueError("no Sentinel in the URL")
    options = dict(parse_qsl(query))
    return SentinelURL(
        tuple(sentinels),
        username or None,
        password,
        db,
        options.get("master_name"),
        options.get("sentinel_password"),
    )


def _credentials(info: SentinelURL) -> str:
    if info.password is None and info.username is None:
        return ""
    user = quote(info.username or "", safe="")
    return f"{user}:{quote(info.password or '', safe='')}@"


def broker_url(url: str) -> str:
    """Celery's broker URL for ``url``: every Sentinel with the credentials and the
    database (kombu reads them from the first part only), no query."""
    info = parse(url)
    creds = _credentials(info)
    return ";".join(f"{SCHEME}://{creds}{host}:{port}/{info.db}" for host, port in info.sentinels)


def _sentinel_kwargs(info: SentinelURL, timeout: float) -> dict[str, Any]:
    """How each question to a Sentinel connects: its own timeouts and password."""
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if info.sentinel_password:
        kwargs["password"] = info.sentinel_password
    return kwargs


def transport_options(url: str) -> dict[str, Any]:
    """Celery's ``broker_transport_options`` additions for a sentinel broker URL."""
    info = parse(url)
    return {"master_name": info.master_name, "sentinel_kwargs": _sentinel_kwargs(info, 5)}


def with_options(url: str | None, master_name: str | None, password: str | None) -> str | None:
    """A sentinel ``url`` with the master name and the Sentinels' password in its query
    (what the URL's query says already wins); other URLs as given."""
    if url is None or not is_sentinel(url):
        return url
    body, _, query = url.partition("?")
    options = dict(parse_qsl(query))
    if master_name:
        options.setdefault("master_name", master_name)
    if password:
        options.setdefault("sentinel_password", password)
    return f"{body}?{urlencode(options)}" if options else body


def with_sentinel_urls(settings: Any) -> Any:
    """``settings`` (a dataclass) with :func:`with_options` applied to both Redis URLs."""
    name, password = settings.redis_master_name, settings.redis_sentinel_password
    return dataclasses.replace(
        settings,
        redis_url=with_options(settings.redis_url, name, password),
        broker_url=with_options(settings.broker_url, name, password),
    )


def problems(settings: Any, env: Mapping[str, str]) -> list[str]:
    """What is wrong with the sentinel settings, each naming its variable (a master name
    set in ``env`` but refused by its parser is reported there already)."""
    out: list[str] = []
    named = bool(settings.redis_master_name or env.get(MASTER_VARIABLE, "").strip())
    for variable, url in (
        ("CUTOUT_REDIS_URL", settings.redis_url),
        ("CUTOUT_BROKER_URL", settings.broker_url),
    ):
        if not is_sentinel(url):
            continue
        try:
            info = parse(str(url))
        except ValueError as exc:
            out.append(f"{variable}: {exc}")
            continue
        if not (named or info.master_name):
            out.append(
                f"{MASTER_VARIABLE}: must be set when {variable} names Sentinels "
                "(sentinel://…): the name of the primary they watch, as in their "
                "`sentinel monitor <name> …` line"
            )
    return out


def client(url: str, *, timeout: float | None = None, **kwargs: Any) -> redis.Redis:
    """A client of the current primary that the Sentinels of ``url`` name (connects
    lazily; after a failover its next connection goes to the new primary).

    ``kwargs`` go to each connection to the primary; ``timeout`` bounds each question to
    a Sentinel (default: the primary's ``socket_timeout``)."""
    info = parse(url)
    if not info.master_name:
        raise ValueError(f"{MASTER_VARIABLE} is not set for a sentinel:// URL")
    wait = timeout or kwargs.get("socket_timeout") or 5
    sentinel = Sentinel(
        list(info.sentinels),
        sentinel_kwargs=_sentinel_kwargs(info, wait),
        username=info.username,
        password=info.password,
        db=info.db,
        **kwargs,
    )
    return sentinel.master_for(info.master_name)
