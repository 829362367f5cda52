"""``cutout remove``'s work once the plan stands: the engine, each image, the rows."""

from __future__ import annotations

import argparse
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cutout.remove import report
from cutout.remove.plan import Plan
from shared.atomicfile import atomic_write
from shared.contract.settings import available_cpus
from shared.errors import CutoutError

if TYPE_CHECKING:
    from shared.contract.options import Options
    from worker.engine import Engine

PROG = "cutout remove"


class OutputError(Exception):
    """An output file that cannot be written (stops the run: rc 1)."""


def open_engine(
    args: argparse.Namespace, options: Options, settings: Any, inputs: int
) -> tuple[Engine, int]:
    """The engine with the run's models loaded (fetched first if missing), and how many
    images run at once. CutoutError when a model is unavailable."""
    from worker.engine import Engine, ensure_model
    from worker.engine.models import MODEL_SPECS
    from worker.engine.quality import SECOND_MODEL

    home = args.model_home or settings.model_home
    cpus = available_cpus()  # the cores this process may use, as the worker counts them
    # several inputs: one stream per core, each with one ONNX Runtime thread, sharing one
    # session (two 1-thread streams out-run one 2-thread stream on small CPUs; see
    # bench/README.md). One input: all cores on it.
    streams = args.jobs or (min(cpus, inputs) if inputs > 1 else 1)
    threads = args.threads or settings.threads_per_stream(streams)
    engine = Engine(home, threads=threads, device=settings.device)
    models = [] if options.fast else [options.model]
    if options.score == "full":
        models.append(SECOND_MODEL)  # the second opinion (docs/quality.md)
    if options.fast:
        # the int8 model is built from the pinned u2net once (worker/engine/fast.py)
        from worker.engine.fast import build_fast_model

        build_fast_model(home, progress=not args.quiet)
        engine.warm_fast(build=False)
    for model in dict.fromkeys(models):
        if model in MODEL_SPECS:
            ensure_model(model, home, progress=not args.quiet)
    engine.warm(dict.fromkeys(models))
    return engine, streams


class Runner:
    """Processes the plan's inputs, each into a :class:`report.Row` (kept by index)."""

    def __init__(
        self,
        engine: Engine,
        options: Options,
        settings: Any,
        background: bytes | None,
        plan: Plan,
    ) -> None:
        self.engine = engine
        self.options = options
        self.settings = settings
        self.background = background
        self.plan = plan
        self.rows: list[report.Row | None] = [None] * len(plan)
        #: set by the input that stops the run: those not started by then are not begun
        self.stopped = threading.Event()

    def one(self, index: int) -> report.Row:
        """Process one input into its output; its row. OutputError or a server-side
        CutoutError (status 500+) stop the run (the row is recorded first)."""
        source, target = self.plan[index]
        if self.stopped.is_set():
            return self._keep(index, report.not_processed(source))
        try:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        except OSError as exc:
            message = f"cannot read it ({exc.strerror or exc})"
            return self._keep(index, report.failed(source, "read_error", message))
        try:
            result = self.engine.process(
                data, self.options, limits=self.settings, background=self.background
            )
        except CutoutError as exc:
            self._keep(index, report.failed(source, exc.code, exc.message))
            if exc.status >= 500:
                self.stopped.set()
                raise
            return self.rows[index]  # type: ignore[return-value]
        if target is None:
            sys.stdout.buffer.write(result.data)
            sys.stdout.buffer.flush()
        else:
            try:
                atomic_write(target, result.data)
            except OSError as exc:
                message = f"{target}: cannot write it ({exc.strerror or exc})"
                self._keep(index, report.failed(source, "write_error", message))
                self.stopped.set()
                raise OutputError(message) from None
        return self._keep(
            index, report.succeeded(source, target, result.quality, self.settings.review_below)
        )

    def _keep(self, index: int, row: report.Row) -> report.Row:
        self.rows[index] = row
        return row

    def all_rows(self) -> list[report.Row]:
        """Every input's row; those the run stopped before are ``not_processed``."""
        return [
            row or report.not_processed(source)
            for row, (source, _) in zip(self.rows, self.plan, strict=True)
        ]


def run_all(runner: Runner, streams: int, quiet: bool, verbose: bool) -> int:
    """Process the plan on ``streams`` threads, with a progress line on stderr (never on
    stdout, which may be the image; ``-v`` lines and problems go there too); 0, 1 (the
    run stopped), 3 (some inputs were not usable) or 130 (interrupted)."""
    from cutout.submit.progress import Progress

    plan = runner.plan
    below = runner.settings.review_below
    progress = Progress("images", len(plan), 0, quiet, prog=PROG)
    unusable = 0
    with ThreadPoolExecutor(streams) as pool:
        try:
            for index, row in enumerate(pool.map(runner.one, range(len(plan))), 1):
                if row.status == "failed":
                    unusable += 1
                    progress.write(f"{PROG}: {row.label}: {row.error_message} ({row.error_code})")
                elif verbose:
                    progress.write(f"{PROG}: {report.score_line(row, below)}")
                progress.update(index, row.input if row.status == "succeeded" else "")
        except (CutoutError, OutputError) as exc:
            pool.shutdown(cancel_futures=True)
            progress.close()
            message = exc.message if isinstance(exc, CutoutError) else str(exc)
            print(f"{PROG}: {message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            # stop now (the queue would otherwise run to its end): the images being made
            # finish, the others are not begun and the report says so
            runner.stopped.set()
            pool.shutdown(cancel_futures=True)
            progress.close()
            done = sum(1 for r in runner.rows if r is not None and r.status != report.NOT_PROCESSED)
            print(f"\n{PROG}: interrupted after {done} of {len(plan)} images", file=sys.stderr)
            return 130
    progress.close(f"{unusable} unusable" if unusable else "")
    return 3 if unusable else 0
