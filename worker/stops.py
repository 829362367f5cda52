"""A stop of the worker (SIGTERM to the pool, Ctrl-C on ``cutout up``, a deploy) is not
a bad job: a run it interrupts goes back to ``queued`` and its message is redelivered.

Billiard's pool children handle SIGTERM by raising ``SystemExit`` wherever the child is:
inside pymatting, ONNX Runtime, boto3 or an HTTP read. Some of those turn it into
another exception on its way out (a C extension that returns with the error set raises
``SystemError`` whose context is the ``SystemExit``; a library may wrap it), which the
task's handlers used to record as ``processing_failed``. :func:`stopping` recognises a
stop by billiard's own flag (the child's terminate handler ran) or by a ``SystemExit`` /
``KeyboardInterrupt`` anywhere in the exception's chain; :func:`hand_back` then puts the
job back in ``queued``, without counting the interrupted run as an attempt, and lets the
process go on stopping. The message comes back by itself: the dying child is a lost
worker to its parent, which rejects the late-acknowledged message with requeue
(``task_reject_on_worker_lost``), and a message the broker still holds unacknowledged is
restored when the worker's connection closes (or after ``visibility_timeout``).

A soft time limit is not a stop (the job took too long: ``processing_timeout``), nor is
``MemoryError`` (the input's fault, bounded by shared/contract/limits.py).

A child can die before Python hands its job back: a native crash as the stop lands
(SIGSEGV inside the matting, seen in about one run in ten of tests/faults/test_stops.py)
leaves the job ``processing`` with the interrupted run counted, and three such stops
failed a job. The worker's main process sees every child it loses: for
:data:`shared.contract.tasks.PROCESS_JOB` it uses :class:`StopAwareRequest`, which hands the job
back the same way (``queued``, the run not counted) when the child was lost while this worker is
stopping (:func:`mark_stopping`, called on Celery's ``worker_shutting_down``). A child
lost while the worker runs on (killed, out of memory, a crash on its own) still counts:
that is what ``CUTOUT_MAX_ATTEMPTS`` bounds.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

from billiard.exceptions import WorkerLostError
from celery.worker import state as worker_state
from celery.worker.request import Request

from shared.errors import CutoutError
from worker import context, reconnect

if TYPE_CHECKING:
    from worker.context import WorkerContext

log = logging.getLogger("cutout.worker")

STOP_TYPES = (SystemExit, KeyboardInterrupt)


def _terminate_handler_fired() -> bool:
    try:
        from billiard.common import terminate_handler_fired
    except ImportError:  # an older billiard: only the exception chain tells
        return False
    return bool(terminate_handler_fired())


def stop_in_chain(exc: BaseException | None) -> BaseException | None:
    """The SystemExit or KeyboardInterrupt that ``exc`` is or came from, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, STOP_TYPES):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def stopping(exc: BaseException | None = None) -> bool:
    """Whether this process is being stopped (and ``exc`` is the stop's doing)."""
    return _terminate_handler_fired() or stop_in_chain(exc) is not None


def stage_of(exc: BaseException) -> str:
    """Where the run was when the stop came, read from the traceback (for the log)."""
    names = " ".join(
        f"{frame.filename}:{frame.name}" for frame in traceback.extract_tb(exc.__traceback__)
    )
    if "pymatting" in names or "alpha_matting" in names:
        return "matting"
    if "onnxruntime" in names or ":_infer" in names or "openvino" in names:
        return "inference"
    if ":_read_input" in names or "net/guard.py" in names:
        return "download"
    if "storage.py:put" in names:
        return "upload"
    if "engine" in names:
        return "engine"
    return "other"


def hand_back(ctx: WorkerContext, job_id: str, exc: BaseException) -> NoReturn:
    """Put ``job_id`` back in ``queued`` (the interrupted run is not an attempt) and
    re-raise the stop, so that the process goes on exiting and the message is redelivered.
    """
    stage = stage_of(exc)
    # a job already finished (or handed back) is left as it is
    with contextlib.suppress(CutoutError):
        ctx.store.transition(job_id, "queued", ("processing",), attempts="-1")
    log.warning("job handed back: the worker is stopping", extra={"job_id": job_id, "stage": stage})
    stop = stop_in_chain(exc)
    if stop is not None:
        raise stop
    raise SystemExit(1) from exc


_stopping = False


def mark_stopping() -> None:
    """This worker's main process is stopping (Celery's ``worker_shutting_down``)."""
    global _stopping
    _stopping = True


def worker_stopping() -> bool:
    """Whether this worker's main process is stopping (warm or cold shutdown)."""
    flags = (worker_state.should_stop, worker_state.should_terminate)
    return _stopping or any(flag is not None and flag is not False for flag in flags)


def refund_lost_run(ctx: WorkerContext, job_id: str, cause: str) -> bool:
    """Hand back ``job_id`` whose pool child was lost while the worker stops: ``queued``,
    the lost run not counted. True if the job was still ``processing`` (else it had
    finished or been handed back already, and is left as it is)."""
    try:
        done = ctx.store.transition(job_id, "queued", ("processing",), attempts="-1")
    except CutoutError:
        return False  # Redis is down: the sweeper takes the job up (the run counts)
    if done.applied:
        log.warning(
            "job handed back: its pool child died while the worker stopped",
            extra={"job_id": job_id, "cause": cause},
        )
    return bool(done.applied)


class StopAwareRequest(Request):  # type: ignore[misc]
    """Celery's request, in the worker's main process, for job runs: a run whose child
    was lost during a stop is handed back before Celery requeues its message."""

    def cancel(self, pool: Any, signal: Any = None, emit_retry: bool = True) -> Any:
        # Celery cancels a late-acknowledged run when the broker connection is lost (or
        # at a shutdown): its message goes back once the consumer reconnects
        # (worker/reconnect.py; a shutdown's channel close restores it first)
        if self.task.acks_late and not self.acknowledged:
            reconnect.note_cancelled(getattr(self.message, "delivery_tag", None))
        return super().cancel(pool, signal, emit_retry=emit_retry)

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        exc = getattr(exc_info, "exception", None)
        exc = getattr(exc, "exc", exc)  # billiard's ExceptionWithTraceback
        if isinstance(exc, (WorkerLostError, *STOP_TYPES)) and worker_stopping():
            args = self.args or ()
            if args and isinstance(args[0], str):
                refund_lost_run(context.get(), args[0], str(exc)[:200])
        return super().on_failure(
            exc_info, send_failed_event=send_failed_event, return_ok=return_ok
        )
