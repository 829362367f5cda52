"""``cutout eval``: quality metrics (IoU, F-score, MAE, boundary F1) against truth masks,
and how well the quality score of each model column finds the bad cutouts.

Exit codes: 0 every item evaluated; 2 usage (bad option, variant or manifest, a listed file
missing); 1 anything else, including items that failed (their error is in the JSON and the
means leave them out) and a missing optional dependency or model weights.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.contract.settings import Settings
    from worker.engine import Engine
    from worker.eval.manifest import Item
    from worker.eval.methods import Method
    from worker.eval.runner import EvalResult


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="quality metrics against truth masks",
        description=(
            "Measure cutout quality against truth masks: IoU, F-score (β²=0.3) and F1 at "
            "alpha ≥ 128, MAE of the soft alpha, boundary F1 within 3 px; per image, per "
            "category and overall. Each model column's photos get their quality score, and "
            "how well it finds the bad cutouts is measured (AUROC, Spearman, the share caught "
            "in the lowest-scored 10% and 20%; --option score=full for the full level). "
            "Prints a table; writes JSON and an HTML report on request."
        ),
        epilog=(
            "example: cutout eval --manifest gt/manifest.csv --model u2net --model u2netp "
            "--variant pp:post_process=true --baseline grabcut --report eval.html"
        ),
    )
    parser.add_argument(
        "--manifest",
        required=True,
        type=Path,
        metavar="CSV",
        help="CSV with image, mask, category columns (paths relative to its folder)",
    )
    _column_flags(parser)
    _run_flags(parser)
    parser.set_defaults(func=handle)


def _column_flags(parser: argparse.ArgumentParser) -> None:
    """What is evaluated: the model columns, their options and variants, the baselines."""
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="M",
        help="a model to evaluate (repeat for several columns; default u2net)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="K=V",
        help=(
            "a processing option for every model column, e.g. post_process=true, or "
            "score=full to measure the full quality score (repeatable)"
        ),
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:K=V,...",
        help=(
            "one more column per model named MODEL+NAME with these options, e.g. "
            "pp:post_process=true; with model=… in it, a single column NAME (repeatable)"
        ),
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        choices=["grabcut"],
        help="a classical baseline column: OpenCV's GrabCut started from a rectangle 5%% "
        "inside the border, no model at all (needs pip install 'cutout[eval]')",
    )


def _run_flags(parser: argparse.ArgumentParser) -> None:
    """Where the results go, which items run, and how."""
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every result as JSON")
    parser.add_argument(
        "--report", type=Path, metavar="OUT.html", help="write a self-contained HTML report"
    )
    parser.add_argument("--limit", type=_positive, metavar="N", help="only the first N items")
    parser.add_argument("--category", metavar="C", help="only the items of one category")
    parser.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        help="ONNX Runtime threads (default CUTOUT_ORT_THREADS, else the CPU count)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress line on stderr (it counts image × column runs; the table is stdout)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _fail(message: str, code: int) -> int:
    print(f"cutout eval: {message}", file=sys.stderr)
    return code


class _Stop(Exception):
    """The run stops here: ``message`` on stderr, exit ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def handle(args: argparse.Namespace) -> int:
    from worker.eval.report import format_table  # here, so that `cutout --help` stays fast

    try:
        methods, items, settings = _inputs(args)
        engine = _engine(methods, settings, args.threads)
        result = _evaluate(args, methods, items, settings, engine)
        print(format_table(result))
        _write_outputs(args, result)
    except _Stop as stop:
        return _fail(stop.message, stop.code)
    if result.failed:
        return _fail(f"{result.failed} item result(s) failed; see the messages above", 1)
    return 0


def _inputs(args: argparse.Namespace) -> tuple[list[Method], list[Item], Settings]:
    """The columns, the manifest's items and the settings; :class:`_Stop` with exit 2 for
    a usage error (bad option, variant or manifest; bad settings), 1 for OpenCV missing
    where GrabCut needs it."""
    # heavy imports here, so that `cutout --help` stays fast
    from cutout.commands.models import local_model_check
    from shared.contract.settings import SettingsError, load_settings
    from shared.errors import InvalidOption
    from worker.eval.grabcut import OpenCVMissing, require_cv2
    from worker.eval.manifest import ManifestError, load_manifest
    from worker.eval.methods import build_methods

    try:
        # tuned and added models, beside the built-in ones
        methods = build_methods(
            args.model, args.option, args.variant, args.baseline, local_model_check(None)
        )
    except InvalidOption as exc:
        raise _Stop(exc.message, 2) from None
    try:
        items = load_manifest(args.manifest, category=args.category, limit=args.limit)
    except ManifestError as exc:
        raise _Stop(str(exc), 2) from None
    if any(m.kind == "baseline" for m in methods):
        try:
            require_cv2()
        except OpenCVMissing as exc:
            raise _Stop(str(exc), 1) from None
    try:
        return methods, items, load_settings()
    except SettingsError as exc:
        raise _Stop(str(exc), 2) from None


def _evaluate(
    args: argparse.Namespace,
    methods: list[Method],
    items: list[Item],
    settings: Settings,
    engine: Engine | None,
) -> EvalResult:
    """Every column on every item, with the progress on stderr."""
    from cutout.submit.progress import Progress
    from worker.engine import decode_image
    from worker.eval.runner import run_eval

    # on stderr: a tqdm bar on a terminal, else a line every few seconds and at the end
    if not args.quiet:
        columns = ", ".join(m.name for m in methods)
        print(f"cutout eval: {len(items)} image(s) x {columns}", file=sys.stderr, flush=True)
    progress = Progress("runs", len(items) * len(methods), 0, args.quiet, prog="cutout eval")
    # pymatting prints solver warnings to stdout; keep stdout for the table alone
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return run_eval(
                items,
                methods,
                decode=lambda data: decode_image(
                    data, max_pixels=settings.max_pixels, max_side=settings.max_side
                ),
                engine=engine,
                thumbs=args.report is not None,
                progress=lambda done, _total: progress.update(done),
                warn=lambda text: progress.write(f"cutout eval: {text}"),
                review_below=settings.review_below,
            )
    finally:
        progress.close()


def _write_outputs(args: argparse.Namespace, result: EvalResult) -> None:
    """The JSON and the HTML report, where asked; :class:`_Stop` (exit 1) when one cannot
    be written."""
    from worker.eval.report import render_html

    command = "cutout eval " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["eval"] else None
    try:
        if args.json is not None:
            _write(args.json, json.dumps(result.to_json(str(args.manifest)), indent=2) + "\n")
        if args.report is not None:
            page = render_html(result, manifest=str(args.manifest), command=command)
            _write(args.report, page)
    except OSError as exc:
        raise _Stop(f"cannot write the output: {exc}", 1) from None


def _engine(methods: list[Method], settings: Settings, threads: int | None) -> Engine | None:
    """The engine with every model the columns need loaded (None without a model column).
    :class:`_Stop` (exit 1) when weights are missing or the device is unavailable."""
    from shared.errors import CutoutError
    from worker.engine import Engine
    from worker.engine.quality import SECOND_MODEL

    chosen = [m.options for m in methods if m.options is not None]
    # score=full's second opinion too: loaded now, not in the first photo's time
    full = [SECOND_MODEL] if any(o.score == "full" for o in chosen) else []
    models = sorted({*(o.model for o in chosen), *full})
    if not models:
        return None
    count = threads or settings.ort_threads or os.cpu_count() or 1
    try:
        engine = Engine(settings.model_home, threads=count, device=settings.device)
        engine.warm(models)
    except CutoutError as exc:
        raise _Stop(f"{exc.message} (fetch weights with: cutout models fetch)", 1) from None
    return engine


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
