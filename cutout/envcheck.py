"""A warning for ``CUTOUT_*`` environment variables that no part of Cutout reads.

A typo (``CUTOUT_MAX_UPLAOD_BYTES``) would otherwise be ignored without a word and the
default used. :func:`warn_unknown_variables` runs once per process, at the start of every
``cutout`` command (API, worker, CLI), and logs one warning per unknown variable, naming
the closest known setting when there is one.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping

from shared.contract.settings import _PARSERS, PREFIX

log = logging.getLogger("cutout.settings")

#: ``CUTOUT_*`` variables that are no server setting but are read elsewhere
OTHER_VARIABLES = frozenset(
    {
        # cutout submit, corrections export, models push: the service and the key to send
        "CUTOUT_API_URL",
        "CUTOUT_API_KEY",
        "CUTOUT_IMAGE_TAG",  # docker-compose.yml: the image tag
        "CUTOUT_CHROMIUM",  # tests/e2e: the browser
    }
)

_warned = False


def known_variables() -> list[str]:
    """Every ``CUTOUT_*`` variable something reads, sorted."""
    return sorted({PREFIX + suffix for suffix in _PARSERS} | OTHER_VARIABLES)


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning for each ``CUTOUT_*`` name in ``env`` that nothing reads, sorted."""
    known = known_variables()
    # compared without the prefix, which every name shares
    suffixes = [name.removeprefix(PREFIX) for name in known]
    warnings = []
    for name in sorted(env):
        if not name.startswith(PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1, cutoff=0.6)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else " (docs/settings.md lists them)"
        warnings.append(f"{name} is not a Cutout setting and is ignored{hint}")
    return warnings


def warn_unknown_variables(
    env: Mapping[str, str] | None = None, emit: Callable[[str], None] | None = None
) -> list[str]:
    """Report :func:`unknown_variables` of ``env`` (default ``os.environ``) once a process,
    through ``emit`` (default: a warning on the ``cutout.settings`` logger)."""
    global _warned
    if _warned:
        return []
    _warned = True
    found = unknown_variables(os.environ if env is None else env)
    for message in found:
        (emit or log.warning)(message)
    return found
