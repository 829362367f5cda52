"""The services one app's views use (:class:`Services`), typed against the store's and the
storage's protocols, and :func:`current` to reach them from a view.

``create_app`` (api/app.py) builds one set per app; nothing here touches Redis or boto3
itself: every operation is a method of a store in ``shared/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from flask import current_app

if TYPE_CHECKING:
    from celery import Celery

    from api.metrics import Metrics
    from shared.contract.settings import Settings
    from shared.s3.storage import Storage
    from shared.stores.corrections import CorrectionRecords
    from shared.stores.idempotency import IdempotencyRecords
    from shared.stores.jobstore import JobStore
    from shared.stores.models import ModelRegistry
    from shared.stores.monitor import Monitor
    from shared.stores.ratelimits import TokenBuckets
    from shared.stores.webhooksecrets import WebhookSecrets


@dataclass
class Services:
    """What the views use; one set per app."""

    settings: Settings
    store: JobStore
    storage: Storage
    celery: Celery
    metrics: Metrics
    #: per-tenant request-rate buckets (api/ratelimit.py)
    rate_limits: TokenBuckets
    #: Idempotency-Key records (api/idempotency.py)
    idempotency: IdempotencyRecords
    #: each tenant's webhook signing secret (api/webhooks.py)
    webhook_secrets: WebhookSecrets
    #: registered custom models (api/models.py)
    models: ModelRegistry
    #: worker telemetry and queue depths (api/metrics.py, api/health.py, api/capabilities.py)
    monitor: Monitor
    #: corrected masks' steps on the job records (api/corrections.py)
    corrections: CorrectionRecords


def current() -> Services:
    """The current app's services (inside a request or an app context)."""
    return cast("Services", current_app.extensions["cutout"])
