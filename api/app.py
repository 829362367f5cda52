"""The application factory: ``create_app()`` for gunicorn, ``create_app(settings)`` for tests.

Nothing is created at import time. The factory builds the clients once per app and keeps
them in ``app.extensions["cutout"]`` (:class:`~api.services.Services`): the Redis job
store and its companions in ``shared/`` (rate limits, idempotency keys, webhook secrets,
custom models, worker telemetry), the S3 storage, the Celery app used only to *send*
tasks by name, and the Prometheus metrics.
Creating them connects to nothing; ``/readyz`` says whether the servers answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, request

from api import auth, health, jobs, openapi, ratelimit, rembg_compat, removebg, trust, uploads
from api.errors import register_error_handlers
from api.metrics import Metrics
from api.services import Services
from shared.contract.settings import Settings, load_settings, redis_url_for
from shared.contract.tasks import make_celery
from shared.s3.storage import S3Storage
from shared.stores.corrections import CorrectionRecords
from shared.stores.idempotency import IdempotencyRecords
from shared.stores.jobs import RedisStore
from shared.stores.models import ModelRegistry
from shared.stores.monitor import Monitor
from shared.stores.ratelimits import TokenBuckets
from shared.stores.webhooksecrets import WebhookSecrets

log = logging.getLogger("cutout.api")
access_log = logging.getLogger("cutout.api.access")

# room for the multipart envelope (boundaries, headers, option fields) around the image
MULTIPART_ENVELOPE = 64 * 1024


def separate_broker_url(settings: Settings) -> str | None:
    """CUTOUT_BROKER_URL when it names another Redis than the job store's (else None)."""
    if not settings.broker_url or settings.broker_url == settings.redis_url:
        return None
    return settings.broker_url


def create_app(
    settings: Settings | None = None, test_config: dict[str, Any] | None = None
) -> Flask:
    """Build the Flask app.

    Raises SettingsError when a setting is wrong, ``CUTOUT_REDIS_URL`` is missing, or the
    server would listen beyond loopback without API keys (see ``auth.check_bind``).
    """
    settings = settings or load_settings()
    redis_url = redis_url_for(settings, "api")
    auth.check_bind(settings)

    # no Flask static route: api.web serves api/static with its CSP and caching headers
    app = Flask(__name__, static_folder=None)
    app.config.update(
        # werkzeug refuses a larger body from its Content-Length before reading it, and
        # stops a chunked one once it passes this; the image itself is limited exactly
        # by intake.read_limited
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + MULTIPART_ENVELOPE,
    )
    app.config.update(test_config or {})
    services = build_services(settings, redis_url)
    app.extensions["cutout"] = services

    register_error_handlers(app)
    _register_request_hooks(app, services)
    # after authentication (registered above): per-tenant rate limit on /v1 and /api
    ratelimit.register(app, services)
    _register_routes(app)
    return app


def build_services(settings: Settings, redis_url: str) -> Services:
    """The clients one app's views use; creating them connects to nothing."""
    store = RedisStore.from_url(redis_url, settings.retention)
    storage = S3Storage.from_settings(settings)
    # queue depths come from the broker's Redis (CUTOUT_BROKER_URL, when separate)
    monitor = Monitor.from_store(store, separate_broker_url(settings))
    return Services(
        settings=settings,
        store=store,
        storage=storage,
        celery=make_celery(settings),
        metrics=Metrics(monitor),
        rate_limits=TokenBuckets.from_store(store),
        idempotency=IdempotencyRecords.from_store(store),
        webhook_secrets=WebhookSecrets.from_store(store),
        models=ModelRegistry.from_store(store, storage),
        monitor=monitor,
        corrections=CorrectionRecords.from_store(store),
    )


def _register_routes(app: Flask) -> None:
    """Every blueprint: jobs, uploads, the rembg and remove.bg compatible routes,
    operations, the OpenAPI document, batches, webhook secrets, corrected masks, a job's
    input image for the page's editor (api/job_input.py), corrected jobs as training data
    (api/correctionlist.py), custom models (api/models.py: registration, listing, the
    submit-time model check), and last the web page at / with its files (api/static)."""
    from api import batches, correctionlist, corrections, job_input, models, web, webhooks

    for blueprint in (jobs.bp, uploads.bp, rembg_compat.bp, removebg.bp, health.bp, openapi.bp):
        app.register_blueprint(blueprint)
    for blueprint in (batches.bp, webhooks.bp, corrections.bp, job_input.bp, correctionlist.bp):
        app.register_blueprint(blueprint)
    models.install(app)
    app.register_blueprint(web.bp)


def _register_request_hooks(app: Flask, services: Services) -> None:
    max_body = app.config["MAX_CONTENT_LENGTH"]

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        g.tenant = None
        g.job_id = None
        # keyless loopback mode: loopback Host names only, no cross-site side effects
        trust.check_request(services.settings)
        auth.authenticate(services.settings)
        # 413 from the declared length before a byte of the body is read (also on routes
        # that would never read it)
        limit = max_body
        if request.endpoint == "batches.create_batch":
            # a batch carries many images (CUTOUT_MAX_BATCH_BYTES); werkzeug enforces it too
            limit = services.settings.max_batch_bytes + MULTIPART_ENVELOPE
            request.max_content_length = limit
        elif request.endpoint == "models.register_model":
            from api.models import body_limit

            limit = body_limit(services.settings)
            request.max_content_length = limit
        if request.content_length is not None and request.content_length > limit:
            from shared.errors import PayloadTooLarge

            raise PayloadTooLarge(
                f"the request body is {request.content_length} bytes, over the limit of {limit}"
            )

    @app.after_request
    def log_request(response: Response) -> Response:
        started = g.get("started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        services.metrics.observe_request(request.method, route, response.status_code, seconds)
        access_log.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status_code,
            seconds * 1000,
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status_code,
                "ms": round(seconds * 1000, 1),
                "tenant": g.get("tenant"),
                "job_id": g.get("job_id"),
            },
        )
        return response
