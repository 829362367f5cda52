"""What the workers of this deployment can serve, as the API sees it from their heartbeats.

Fast mode needs the fast extra and a built int8 model on the worker. A job with
``fast: true`` on a deployment where no worker has it used to be accepted and then fail
(``fast_mode_unavailable``); now the API refuses it at submit when live workers exist and
none advertises fast mode (``"fast": true`` in its heartbeat, shared/stores/telemetry.py). A
worker advertises it from its first heartbeat when it will load (or build) the model
(``fast_state: "loading"``, worker/warmup.py ``fast_prospect``), not only once loaded: a
fast job that reaches it waits for the model, and the seconds after a start no longer
refuse fast jobs. With no live worker at all (scaled to zero, or still starting) the job
is accepted and waits, as every job does: there is nobody to ask.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from shared.contract.options import Options
from shared.errors import FastModeUnavailable, Unavailable

if TYPE_CHECKING:
    from api.services import Services


def fast_available(services: Services) -> bool | None:
    """True / False as the live workers say; None when no worker is alive to say."""
    try:
        return services.monitor.serves_fast()
    except Unavailable:
        return None  # the store is down: the view itself answers 503 soon enough


def check_fast(services: Services, options: Iterable[Options]) -> None:
    """FastModeUnavailable (422) when any of ``options`` asks for fast mode and the live
    workers say none of them serves it."""
    if not any(option.fast for option in options):
        return
    if fast_available(services) is False:
        raise FastModeUnavailable(
            "no worker of this service serves fast mode; send the job without `fast`, or "
            "have the operator install the fast extra (pip install 'cutout[fast]'), run "
            "`cutout models build-fast` and restart the workers",
            option="fast",
        )
