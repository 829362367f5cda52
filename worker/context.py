"""Per-process worker state: settings, store, storage, Celery app and the engine.

Created once per process. The engine (one ONNX Runtime session per model) is created
lazily in each pool child, never in the parent that forks them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.contract.settings import Settings, redis_url_for
from shared.contract.tasks import celery_config
from shared.errors import FastModeUnavailable
from shared.s3.storage import S3Storage, Storage
from shared.stores.jobs import RedisStore
from shared.stores.workerstore import RedisWorkerStore, WorkerStore

if TYPE_CHECKING:
    from celery import Celery

    from worker.engine import Engine

log = logging.getLogger("cutout.worker")


@dataclass
class WorkerContext:
    settings: Settings
    app: Celery
    store: WorkerStore
    storage: Storage
    #: what the heartbeat says of fast mode: ``loading`` (this process will load or build
    #: it: worker/warmup.py ``fast_prospect``), ``available`` or ``unavailable``
    fast_state: str = "unavailable"
    _engine: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                # imported here: onnxruntime and the image libraries load in the pool
                # child that runs jobs, not in the parent that forks it
                from worker.engine import Engine
                from worker.engine.custom import RegistryResolver
                from worker.engine.sandbox import Sandbox, SandboxLimits

                settings = self.settings
                # tenants' models run in runner processes under caps (docs/security.md)
                sandbox = Sandbox(
                    SandboxLimits(
                        memory=settings.custom_model_memory,
                        timeout=settings.custom_model_timeout,
                        threads=settings.effective_ort_threads,
                        sessions=settings.custom_model_sessions,
                    )
                )
                self._engine = Engine(
                    self.settings.model_home,
                    threads=self.settings.effective_ort_threads,
                    device=self.settings.device,
                    # custom models registered with the service (docs/tune.md)
                    custom=RegistryResolver(
                        self.settings.model_home,
                        self.store.model_registry(self.storage),
                        max_files=self.settings.custom_model_cache_files,
                        max_bytes=self.settings.custom_model_cache_bytes,
                    ),
                    custom_sessions=self.settings.custom_model_sessions,
                    sandbox=sandbox,
                )
                # CUTOUT_FAST=build: a fast job that comes before the start-up build
                # builds it too (serialised with it on its lock file), rather than fail
                self._engine.fast_build = settings.fast == "build"
            return self._engine  # type: ignore[no-any-return]

    def warm(self) -> None:
        """Create the sessions for every served model (pool child start)."""
        self.engine.warm(self.settings.models)
        self.warm_fast()
        log.info(
            "engine ready",
            extra={
                "models": list(self.settings.models),
                "providers": self.engine.providers(self.settings.models[0]),
                "threads": self.settings.effective_ort_threads,
            },
        )

    def warm_fast(self) -> None:
        """Load the fast int8 model at start when the fast extra is installed and u2net is
        served (CUTOUT_FAST): ``auto`` loads it when a matching one is built, ``build``
        builds it first when missing or stale (once; pool children serialise on the
        build's lock file), ``off`` never. Without it, fast jobs fail with
        fast_mode_unavailable saying what to run; no request ever builds it."""
        from worker.engine import fast

        mode = self.settings.fast
        if mode == "off" or "u2net" not in self.settings.models or not fast.available():
            self.fast_state = "unavailable"
            log.info("fast mode off", extra={"fast": mode, "fast_extra": fast.available()})
            return
        try:
            self.engine.warm_fast(build=mode == "build")
        except FastModeUnavailable as exc:
            self.fast_state = "unavailable"
            log.warning("fast mode unavailable", extra={"reason": exc.message})
            return
        self.fast_state = "available"
        log.info("fast model ready", extra={"fast_input_size": fast.FAST_INPUT_SIZE})


_context: WorkerContext | None = None


def worker_storage(settings: Settings) -> S3Storage:
    """Object storage whose every call gives up well inside the task's soft time limit.

    With the API's timeouts (5 s connect, 30 s read, 3 attempts) a hung storage server
    held a run past its soft limit, whose exception botocore swallows (it wraps anything
    raised inside its HTTP send and retries), until the hard limit killed the process.
    Here one call takes at most 2 × (connect + read) + ~1 s of backoff, under the soft
    limit: a hang becomes a StorageError, retried with backoff like any other.
    """
    soft = float(celery_config(settings)["task_soft_time_limit"])
    return S3Storage(
        settings.s3_endpoint_url,
        settings.s3_bucket,
        settings.s3_region,
        connect_timeout=min(5.0, max(1.0, soft / 8)),
        read_timeout=min(30.0, max(2.0, soft / 5)),
        max_attempts=2,
        ca_bundle=settings.s3_ca_bundle,
    )


def configure(settings: Settings, app: Celery) -> WorkerContext:
    global _context
    _context = WorkerContext(
        settings=settings,
        app=app,
        store=RedisWorkerStore.of(
            # no Redis of its own: SettingsError, never a guess at localhost
            RedisStore.from_url(redis_url_for(settings, "worker"), settings.retention)
        ),
        storage=worker_storage(settings),
    )
    return _context


def get() -> WorkerContext:
    if _context is None:
        raise RuntimeError("worker context not configured: start with `cutout worker`")
    return _context
