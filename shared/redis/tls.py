"""TLS and credentials for the connections to Redis and to S3 (docs/operations.md).

Redis: a ``rediss://`` URL (``CUTOUT_REDIS_URL``, ``CUTOUT_BROKER_URL``) is TLS; an ACL
user and password go in it (``rediss://user:password@host:port/0``, percent-encoded).
The CA, client certificate and key are files, given either in the URL's query as
redis-py and Celery read it (``?ssl_ca_certs=…&ssl_certfile=…&ssl_keyfile=…``) or in
``CUTOUT_REDIS_TLS_CA_FILE``, ``CUTOUT_REDIS_TLS_CERT_FILE`` and
``CUTOUT_REDIS_TLS_KEY_FILE``, which :func:`tls_url` writes into the query of each
``rediss://`` URL (a file the URL names itself wins). Every Redis client (redis-py's and
Celery's) is made from that URL, so they all connect the same way. A ``rediss://`` URL
always verifies the server (``ssl_cert_reqs=required`` unless it says otherwise): Celery
would otherwise connect without verifying.

S3: ``CUTOUT_S3_CA_BUNDLE`` (else botocore's own ``AWS_CA_BUNDLE``) is the CA bundle the
S3 client verifies the endpoint with.

:func:`file_problems` is part of the settings check (shared/contract/settings.py): a file that is
missing, unreadable or not PEM is reported naming its variable before anything starts.
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TLS_SCHEME = "rediss"
#: the query names redis-py and kombu read, and the setting that fills each
QUERY_FILES = {
    "ssl_ca_certs": "CUTOUT_REDIS_TLS_CA_FILE",
    "ssl_certfile": "CUTOUT_REDIS_TLS_CERT_FILE",
    "ssl_keyfile": "CUTOUT_REDIS_TLS_KEY_FILE",
}
#: what ``ssl_cert_reqs`` may say in a URL (the spellings both redis-py and kombu take)
CERT_REQS = ("required", "optional", "none")


def readable_file(text: str) -> Path:
    """A settings parser: the path of a file this process can read."""
    path = Path(text.strip()).expanduser()
    if not path.exists():
        raise ValueError("no such file")
    if not path.is_file():
        raise ValueError("not a file")
    if not os.access(path, os.R_OK):
        raise ValueError("the file is not readable by this process")
    return path


#: the settings of this module (shared/contract/settings.py): variable suffix → (field, parser)
PARSERS = {
    "REDIS_TLS_CA_FILE": ("redis_tls_ca_file", readable_file),
    "REDIS_TLS_CERT_FILE": ("redis_tls_cert_file", readable_file),
    "REDIS_TLS_KEY_FILE": ("redis_tls_key_file", readable_file),
    "S3_CA_BUNDLE": ("s3_ca_bundle", readable_file),
}


def is_tls(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme == TLS_SCHEME


def tls_url(
    url: str | None,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> str | None:
    """``url`` with the TLS files in its query when it is ``rediss://`` (others as given).

    Files the URL's query already names are kept; ``ssl_cert_reqs=required`` is added
    unless the query sets it.
    """
    if url is None or not is_tls(url):
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    given = {"ssl_ca_certs": ca_file, "ssl_certfile": cert_file, "ssl_keyfile": key_file}
    for name, path in given.items():
        if path is not None and name not in query:
            query[name] = str(path)
    query.setdefault("ssl_cert_reqs", "required")
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_tls_urls(settings: Any) -> Any:
    """``settings`` (a dataclass) with :func:`tls_url` applied to both Redis URLs."""
    files = (settings.redis_tls_ca_file, settings.redis_tls_cert_file, settings.redis_tls_key_file)
    return dataclasses.replace(
        settings,
        redis_url=tls_url(settings.redis_url, *files),
        broker_url=tls_url(settings.broker_url, *files),
    )


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"((?:^|://)[^/@:]*:)[^/@]*@", r"\1***@", url)


def file_problems(settings: object, env: Mapping[str, str]) -> list[str]:
    """What is wrong with the TLS files of ``settings``, each naming its variable.

    The files themselves were found readable by the parsers; here: they are PEM a TLS
    context loads, a key comes with its certificate, the TLS files have a ``rediss://``
    URL to apply to, the files a URL's query names, and botocore's ``AWS_CA_BUNDLE``.
    """
    problems: list[str] = []
    ca, cert, key = (getattr(settings, f"redis_tls_{n}_file") for n in ("ca", "cert", "key"))
    urls = {
        "CUTOUT_REDIS_URL": getattr(settings, "redis_url", None),
        "CUTOUT_BROKER_URL": getattr(settings, "broker_url", None),
    }
    if (ca or cert or key) and not any(is_tls(url) for url in urls.values()):
        named = [QUERY_FILES[q] for q, p in zip(QUERY_FILES, (ca, cert, key), strict=True) if p]
        problems.append(
            f"{', '.join(named)}: set, but neither CUTOUT_REDIS_URL nor CUTOUT_BROKER_URL "
            "is a rediss:// URL (TLS), so no connection would use it"
        )
    if not any(env.get(name, "").strip() for name in _unparsed(settings)):
        # each file was found (a missing one is reported once, by its parser)
        problems += _pem_problems(ca, cert, key, "CUTOUT_REDIS_TLS_{}_FILE")
    for variable, url in urls.items():
        if is_tls(url):
            problems += _query_problems(variable, str(url))
    s3_ca = getattr(settings, "s3_ca_bundle", None)
    problems += _pem_problems(s3_ca, None, None, "CUTOUT_S3_CA_BUNDLE")
    aws_ca = env.get("AWS_CA_BUNDLE", "").strip()
    if aws_ca and s3_ca is None:
        try:
            problems += _pem_problems(readable_file(aws_ca), None, None, "AWS_CA_BUNDLE")
        except ValueError as exc:
            problems.append(f"AWS_CA_BUNDLE: {exc}, got {aws_ca!r}")
    return problems


def _unparsed(settings: object) -> list[str]:
    """The Redis TLS variables whose setting is unset (unset, or its parser refused it)."""
    return [
        f"CUTOUT_{suffix}"
        for suffix, (field, _) in PARSERS.items()
        if suffix.startswith("REDIS_") and getattr(settings, field, None) is None
    ]


def _query_problems(variable: str, url: str) -> list[str]:
    """The ``ssl_*`` files and ``ssl_cert_reqs`` a URL's own query names."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    problems = []
    reqs = query.get("ssl_cert_reqs", "required")
    if reqs not in CERT_REQS:
        problems.append(f"{variable}: ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
    found: dict[str, Path | None] = {}
    for name in QUERY_FILES:
        found[name] = None
        if name in query:
            try:
                found[name] = readable_file(query[name])
            except ValueError as exc:
                problems.append(f"{variable}: its {name} file {query[name]!r}: {exc}")
    if not problems:
        where = f"{variable} ({{}})"
        ca, cert, key = found.values()
        problems += _pem_problems(ca, cert, key, where, names=tuple(QUERY_FILES))
    return problems


def _pem_problems(
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    where: str,
    names: tuple[str, ...] = ("CA", "CERT", "KEY"),
) -> list[str]:
    """Whether a TLS context loads the CA, and the certificate with its key.

    ``where`` names the variable, with ``{}`` for which of ``names`` is meant.
    """
    problems = []
    if ca is not None:
        try:
            ssl.create_default_context().load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError, ValueError) as exc:
            problems.append(
                f"{where.format(names[0])}: no PEM certificate a TLS client can load "
                f"in {str(ca)!r} ({_reason(exc)})"
            )
    if key is not None and cert is None:
        problems.append(f"{where.format(names[2])}: a key needs its certificate as well")
    elif cert is not None:
        try:
            ssl.create_default_context().load_cert_chain(str(cert), str(key) if key else None)
        except (ssl.SSLError, OSError, ValueError) as exc:
            problems.append(
                f"{where.format(names[1])}: the certificate {str(cert)!r} and its key do not "
                f"load as a TLS client certificate ({_reason(exc)})"
            )
    return problems


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or str(exc) or type(exc).__name__
