"""What counts as a stop of the worker, not a failure of the job (worker/stops.py)."""

from __future__ import annotations

import pytest

from shared.errors import ProcessingTimeout, StorageError
from worker.stops import stage_of, stop_in_chain, stopping


def raised(fn):  # type: ignore[no-untyped-def]
    try:
        fn()
    except BaseException as exc:  # the test looks at whatever came out
        return exc
    raise AssertionError("nothing raised")


def _exit() -> None:
    raise SystemExit(-15)


def _wrapped_by_c_extension() -> None:
    # what a C extension that returns with the error set looks like from Python
    try:
        _exit()
    except SystemExit:
        raise SystemError("<built-in method> returned a result with an exception set")  # noqa: B904


def _wrapped_by_library() -> None:
    try:
        _exit()
    except SystemExit as exc:
        raise StorageError("object storage did not answer") from exc


def test_a_stop_is_recognised_however_it_surfaces() -> None:
    for fn in (_exit, _wrapped_by_c_extension, _wrapped_by_library):
        exc = raised(fn)
        assert isinstance(stop_in_chain(exc), SystemExit), fn
        assert stopping(exc)
    assert isinstance(stop_in_chain(KeyboardInterrupt()), KeyboardInterrupt)


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad pixels"), MemoryError(), ProcessingTimeout("too slow"), StorageError("x")],
)
def test_job_errors_are_not_stops(exc: BaseException) -> None:
    assert stop_in_chain(exc) is None
    assert not stopping(exc)  # this test process has no terminate handler fired


def test_stage_is_read_from_the_traceback() -> None:
    def _read_input() -> None:
        _exit()

    assert stage_of(raised(_read_input)) == "download"
    assert stage_of(raised(_exit)) == "other"
