"""One typed settings object, built from ``CUTOUT_*`` environment variables.

Every process (API, worker, ``cutout up``) builds it once at start with
:func:`load_settings`. All problems are collected and reported together, each naming its
variable, and the process stops before doing anything else.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from shared.contract.settingvalues import (
    _bucket,
    _choice,
    _folder,
    _int_range,
    _positive_number,
    _size_at_least,
    _unit_interval,
    _url,
    parse_api_keys,
    parse_duration,
    parse_networks,
    parse_pixels,
    parse_schedule,
    parse_size,
)
from shared.redis import sentinel, tls

PREFIX = "CUTOUT_"
DEVICES = ("cpu", "cuda")


class SettingsError(Exception):
    """One or more settings are wrong; ``problems`` lists them, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))


def default_model_home() -> Path:
    """A per-user data folder, as ``CUTOUT_MODEL_HOME`` defaults to."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "cutout" / "models"


def available_cpus() -> int:
    """The cores this process may run on (its affinity: a container's cpuset, ``taskset``),
    which every default sized from the CPU count uses (worker pool, ONNX Runtime threads,
    ``cutout remove``'s streams); ``os.cpu_count()`` counts the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".cutout")
    redis_url: str | None = None
    broker_url: str | None = None  # Celery's queues; unset: the same Redis as redis_url
    # sentinel:// URLs (shared/redis/sentinel.py): the primary's name, the Sentinels' password
    redis_master_name: str | None = None
    redis_sentinel_password: str | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str = "cutout"
    s3_region: str = "us-east-1"
    # TLS (shared/redis/tls.py): files for rediss:// URLs; the CA bundle S3 is verified with
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None
    s3_ca_bundle: Path | None = None
    model_home: Path = dataclasses.field(default_factory=default_model_home)
    api_keys: dict[str, str] = dataclasses.field(default_factory=dict)  # key → tenant
    auth: str = "auto"  # auto: on when keys are set; off: explicitly open (warns)
    worker_concurrency: int = 0  # 0: chosen from the CPU count
    ort_threads: int = 0  # 0: chosen from the CPU count and concurrency
    device: str = "cpu"
    batch_size: int = 1
    fast: str = "auto"  # fast mode at worker start: auto (load if built), build, off
    max_upload_bytes: int = 25_000_000
    max_pixels: int = 50_000_000
    max_side: int = 20_000
    # alpha matting solves its band a box at a time: 0.6 GB + 16 B per input pixel
    # (docs/security.md, memory per job); this bounds its time
    max_matting_pixels: int = 16_000_000
    # one job's memory (shared/contract/limits.py): the 2.5 GB per-child bound less ~0.6 GB of
    # model sessions
    max_job_bytes: int = 1_900_000_000
    retention: int = 7 * 86400
    webhook_retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    webhook_timeout: float = 10.0
    allowed_private_networks: tuple[Any, ...] = ()
    sync_timeout: float = 60.0
    task_time_limit: int = 300
    max_attempts: int = 3
    worker_heartbeat_file: Path | None = None  # touched by the consumer (worker/health.py)
    reconcile_after: int = 300  # seconds queued before the broker is asked for the message
    max_queued_per_tenant: int = 20_000
    max_batch_items: int = 10_000  # items in one POST /v1/batches
    max_batch_bytes: int = 200_000_000  # body of one multipart (or JSON) batch request
    bulk_window: int = 200  # one tenant's batch items in flight in `bulk` (worker/fair.py)
    rate_limit: float = 50.0  # requests per second per tenant (token refill)
    rate_burst: int = 200
    models: tuple[str, ...] = ("u2net", "u2netp")
    # custom models (docs/tune.md): sessions a worker keeps (LRU), who registers global ones
    custom_model_sessions: int = 4
    # custom models' sandbox (docs/security.md): a file, per-scope quotas, a worker's cache
    max_model_bytes: int = 200_000_000  # u2net's 176 MB file and some room
    max_models_per_tenant: int = 20
    max_model_storage_bytes: int = 1_000_000_000
    custom_model_cache_files: int = 16
    custom_model_cache_bytes: int = 2_000_000_000
    # a custom model runs in a sandboxed runner (worker/engine/sandbox.py): its address
    # space and the seconds one load and run may take
    custom_model_memory: int = 2 * 2**30
    custom_model_timeout: int = 30
    # one tenant's single custom-model jobs admitted at once (worker/fair.py)
    custom_model_window: int = 2
    operator_tenants: tuple[str, ...] = ()
    # a cutout whose quality score is below this goes on the review list (docs/quality.md);
    # worker/engine/quality.py's REVIEW_BELOW, chosen on generated truth (a test pins it)
    review_below: float = 0.85
    log_level: str = "info"
    log_format: str = "json"

    @property
    def effective_broker_url(self) -> str | None:
        """Where Celery's queues live: CUTOUT_BROKER_URL, else CUTOUT_REDIS_URL."""
        return self.broker_url or self.redis_url

    @property
    def effective_concurrency(self) -> int:
        if self.worker_concurrency:
            return self.worker_concurrency
        if self.device == "cuda":
            return 1
        return available_cpus()

    @property
    def effective_ort_threads(self) -> int:
        return self.threads_per_stream(self.effective_concurrency)

    def threads_per_stream(self, streams: int) -> int:
        """ONNX Runtime threads for each of ``streams`` runs at once: CUTOUT_ORT_THREADS,
        else the available cores shared out among them (at least one each)."""
        return self.ort_threads or max(1, available_cpus() // max(1, streams))

    @property
    def auth_enabled(self) -> bool:
        return self.auth != "off" and bool(self.api_keys)

    def tenant_for_key(self, key: str) -> str | None:
        """Constant-time lookup of a key's tenant."""
        import hmac

        found = None
        for known, tenant in self.api_keys.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                found = tenant
        return found


# variables whose value is never repeated in an error message
_SECRET = frozenset({"API_KEYS", *sentinel.SECRET})

# variable suffix → (field, parser)
_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "HOST": ("host", str.strip),
    "PORT": ("port", _int_range(1, 65535)),
    "DATA_DIR": ("data_dir", _folder),
    "REDIS_URL": ("redis_url", _url),
    "BROKER_URL": ("broker_url", _url),
    "S3_ENDPOINT_URL": ("s3_endpoint_url", _url),
    "S3_BUCKET": ("s3_bucket", _bucket),
    "S3_REGION": ("s3_region", str.strip),
    **tls.PARSERS,
    **sentinel.PARSERS,
    "MODEL_HOME": ("model_home", _folder),
    "API_KEYS": ("api_keys", parse_api_keys),
    "AUTH": ("auth", _choice("auto", "on", "off")),
    "WORKER_CONCURRENCY": ("worker_concurrency", _int_range(1, 256)),
    "ORT_THREADS": ("ort_threads", _int_range(1, 256)),
    "DEVICE": ("device", _choice(*DEVICES)),
    "BATCH_SIZE": ("batch_size", _int_range(1, 256)),
    "FAST": ("fast", _choice("auto", "build", "off")),
    "MAX_UPLOAD_BYTES": ("max_upload_bytes", parse_size),
    "MAX_PIXELS": ("max_pixels", parse_pixels),
    "MAX_SIDE": ("max_side", _int_range(16, 100_000)),
    "MAX_MATTING_PIXELS": ("max_matting_pixels", parse_pixels),
    "MAX_JOB_MEMORY": ("max_job_bytes", parse_size),
    "RETENTION": ("retention", parse_duration),
    "WEBHOOK_RETRY_SCHEDULE": ("webhook_retry_schedule", parse_schedule),
    "WEBHOOK_TIMEOUT": ("webhook_timeout", lambda t: float(parse_duration(t))),
    "ALLOWED_PRIVATE_NETWORKS": ("allowed_private_networks", parse_networks),
    "SYNC_TIMEOUT": ("sync_timeout", lambda t: float(parse_duration(t))),
    "TASK_TIME_LIMIT": ("task_time_limit", parse_duration),
    "MAX_ATTEMPTS": ("max_attempts", _int_range(1, 100)),
    "RECONCILE_AFTER": ("reconcile_after", parse_duration),
    "WORKER_HEARTBEAT_FILE": ("worker_heartbeat_file", lambda t: Path(t).expanduser()),
    "MAX_QUEUED_PER_TENANT": ("max_queued_per_tenant", _int_range(1, 10_000_000)),
    "MAX_BATCH_ITEMS": ("max_batch_items", _int_range(1, 1_000_000)),
    "MAX_BATCH_BYTES": ("max_batch_bytes", parse_size),
    "BULK_WINDOW": ("bulk_window", _int_range(1, 1_000_000)),
    "RATE_LIMIT": ("rate_limit", _positive_number),
    "RATE_BURST": ("rate_burst", _int_range(1, 1_000_000)),
    "MODELS": ("models", lambda t: tuple(m.strip() for m in t.split(",") if m.strip())),
    "CUSTOM_MODEL_SESSIONS": ("custom_model_sessions", _int_range(1, 256)),
    "MAX_MODEL_BYTES": ("max_model_bytes", parse_size),
    "MAX_MODELS_PER_TENANT": ("max_models_per_tenant", _int_range(1, 100_000)),
    "MAX_MODEL_STORAGE_BYTES": ("max_model_storage_bytes", parse_size),
    "CUSTOM_MODEL_CACHE_FILES": ("custom_model_cache_files", _int_range(1, 100_000)),
    "CUSTOM_MODEL_CACHE_BYTES": ("custom_model_cache_bytes", parse_size),
    "CUSTOM_MODEL_MEMORY": ("custom_model_memory", _size_at_least(512 * 2**20)),
    "CUSTOM_MODEL_TIMEOUT": ("custom_model_timeout", parse_duration),
    "CUSTOM_MODEL_WINDOW": ("custom_model_window", _int_range(1, 100_000)),
    "OPERATOR_TENANTS": (
        "operator_tenants",
        lambda t: tuple(x.strip() for x in t.split(",") if x.strip()),
    ),
    "REVIEW_BELOW": ("review_below", _unit_interval),
    "LOG_LEVEL": ("log_level", _choice("debug", "info", "warning", "error")),
    "LOG_FORMAT": ("log_format", _choice("json", "text")),
}


#: the processes that cannot run without a Redis of their own, and how a message names
#: them: with ``CUTOUT_REDIS_URL`` unset they stop at start like a wrong value stops them
#: (exit 2 from the command line, SettingsError from create_app or create_worker_app),
#: never falling back to a Redis on localhost. ``cutout up`` starts an embedded Redis and
#: sets the variable for the API and the worker it runs; commands that need no Redis
#: (remove, eval, models, tune) never ask.
NEEDS_REDIS = {"api": "the API", "worker": "the worker"}


def redis_problems(settings: Settings, process: str | None) -> list[str]:
    """The one problem when ``process`` needs Redis (:data:`NEEDS_REDIS`) and has none."""
    if process not in NEEDS_REDIS or settings.redis_url:
        return []
    return [
        f"{PREFIX}REDIS_URL: required by {NEEDS_REDIS[process]} (Redis for jobs and the "
        "queue); `cutout up` sets it for you"
    ]


def redis_url_for(settings: Settings, process: Literal["api", "worker"]) -> str:
    """``CUTOUT_REDIS_URL`` for a process that cannot run without it; SettingsError when it
    is unset (settings built in code, which :func:`load_settings` did not check)."""
    if not settings.redis_url:
        raise SettingsError(redis_problems(settings, process))
    return settings.redis_url


def load_settings(
    env: Mapping[str, str] | None = None, *, process: str | None = None, **overrides: Any
) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``).

    Raises SettingsError listing every wrong variable with its value and what it should
    be, for example ``CUTOUT_PORT: expected a whole number from 1 to 65535, got 'abc'``;
    for a ``process`` of :data:`NEEDS_REDIS`, a missing ``CUTOUT_REDIS_URL`` is listed too.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    problems: list[str] = []
    for suffix, (field, parser) in _PARSERS.items():
        name = PREFIX + suffix
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[field] = parser(raw)
        except (ValueError, TypeError) as exc:
            problems.append(_problem(name, suffix, raw, exc))
    values.update(overrides)
    settings = Settings(**values)
    problems += tls.file_problems(settings, env)  # the files are PEM, a key has its cert
    settings = tls.with_tls_urls(settings)  # the TLS files in the query of rediss:// URLs
    problems += sentinel.problems(settings, env)  # a sentinel:// URL has its primary's name
    settings = sentinel.with_sentinel_urls(settings)  # which it carries in its query
    from shared.contract.options import MODELS

    unknown = [m for m in settings.models if m not in MODELS]
    if unknown:
        problems.append(
            f"{PREFIX}MODELS: unknown model(s) {', '.join(map(repr, unknown))}; "
            f"expected a comma-separated list of {', '.join(MODELS)}"
        )
    problems += redis_problems(settings, process)
    if problems:
        raise SettingsError(problems)
    return settings


def _problem(name: str, suffix: str, raw: str, exc: Exception) -> str:
    """``CUTOUT_X: what is expected, got 'value'`` (a secret's value is never shown)."""
    message = str(exc)
    if suffix not in _SECRET and "got " not in message:
        shown = tls.redacted(raw)  # a URL's password is never shown
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        message += f", got {shown!r}"
    return f"{name}: {message}"
