"""``cutout remove IN [IN...] OUT``: background removal on this machine, no server.

- one file into a file (``-`` for stdin or stdout); the format comes from OUT's
  extension (.png, .webp, .jpg/.jpeg; any other extension is refused, and ``--format``
  must agree with it), else from ``--format``, else PNG;
- one or more files or folders into a folder (created if missing; a name with an image
  extension is refused): each result is ``OUT/<input stem>.<format extension>``; a
  folder contributes its image files (by extension, not recursive).

``--report FILE.csv`` writes one row per input: ``input`` (as given or found in a
folder), ``output``, ``status`` (``succeeded``, ``failed``, ``not_processed``), ``score``
(0-1, higher is more likely right), ``review`` (``true`` when the score is below
``CUTOUT_REVIEW_BELOW``), ``flags`` (codes separated by spaces; docs/quality.md),
``error_code`` and ``error_message``; ``--report -`` prints it (not when the image goes to
stdout). ``-v`` prints each input's score and flags; ``--score full`` adds a second
model's opinion (docs/quality.md).

``--margin`` without ``--crop``, ``--fill`` without ``--canvas`` and ``--jobs``/``--threads``
below 1 are usage errors, not silently ignored.

The model is loaded once. Exit codes: 0 done; 2 usage error (bad option, missing input,
two inputs that would write the same file); 3 an input is not a usable image (each one is
named with the reason, the others are still processed); 1 anything else (weights
unavailable, an output or the report that cannot be written); 130 interrupted (Ctrl-C
stops at once: the images being made finish, the report is still written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cutout.commands import folder_path
from cutout.commands.flags import add_option_flags
from cutout.remove.plan import (
    UsageError,
    check_flag_pairs,
    check_report,
    name_outputs,
    options_for,
    plan_paths,
    positive_int,
    read_background,
)
from shared.errors import CutoutError

if TYPE_CHECKING:
    from cutout.remove.plan import Plan
    from cutout.remove.run import Runner
    from shared.contract.options import Options
    from shared.contract.settings import Settings

PROG = "cutout remove"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "remove",
        help="remove the background of local images (no server)",
        usage="%(prog)s [options] IN [IN ...] OUT",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="input files or folders ('-': stdin), then OUT"
    )
    add_option_flags(parser)
    parser.add_argument(
        "--jobs",
        "-j",
        type=positive_int,
        help="images at once (default: one per CPU for several inputs)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="ONNX Runtime threads per image (default: CPUs / jobs)",
    )
    parser.add_argument("--model-home", type=folder_path, help="default: CUTOUT_MODEL_HOME")
    parser.add_argument(
        "--report",
        metavar="FILE.csv",
        help="write one CSV row per input: input, output, status, score, review, flags, "
        "error_code, error_message ('-': stdout, when the image does not go there)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print each input's quality score and flags (on stderr)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=handler)


def _prepare(
    args: argparse.Namespace, settings: Settings
) -> tuple[Plan, Path | None, Options, bytes | None]:
    """The plan (outputs named), OUT when it is a folder, the options and the background;
    UsageError, InvalidOption or CutoutError (a background that cannot be fetched)."""
    from cutout.commands.models import local_model_check

    check_flag_pairs(args)
    plan, folder = plan_paths(args.paths)
    # tuned and added models (cutout tune, models add) beside the built-in ones
    models = local_model_check(args.model_home)
    options = options_for(args, args.paths[-1], single=not folder, models=models)
    out_dir = Path(args.paths[-1]) if folder else None
    if out_dir is not None:
        plan = name_outputs(plan, out_dir, options.extension)
    check_report(args.report, plan)
    background = read_background(options, settings)
    return plan, out_dir, options, background


def handler(args: argparse.Namespace) -> int:
    from cutout.remove.run import Runner, open_engine, run_all
    from shared.contract.settings import SettingsError, load_settings
    from shared.errors import FastModeUnavailable, InvalidOption

    if len(args.paths) < 2:
        return _fail("give an input and an output (IN... OUT; '-' for stdin/stdout)", 2)
    try:
        settings = load_settings()
        plan, out_dir, options, background = _prepare(args, settings)
    except (SettingsError, UsageError, InvalidOption) as exc:
        return _fail(str(exc), 2)
    except CutoutError as exc:  # the background URL could not be fetched
        return _fail(f"{exc.message} ({exc.code})", 2)
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return _fail(f"{out_dir}: cannot make the folder ({exc.strerror})", 1)
    try:
        engine, streams = open_engine(args, options, settings, len(plan))
    except FastModeUnavailable as exc:
        return _fail(f"{exc.message} ({exc.code})", 2)
    except CutoutError as exc:
        return _fail(exc.message, 1)
    runner = Runner(engine, options, settings, background, plan)
    quiet = args.quiet or out_dir is None
    return _finish(args, runner, run_all(runner, streams, quiet=quiet, verbose=args.verbose))


def _finish(args: argparse.Namespace, runner: Runner, code: int) -> int:
    """Write the report (also when the run stopped: what was done, and what was not) and
    say how many cutouts need a look."""
    from cutout.remove import report

    rows = runner.all_rows()
    below = runner.settings.review_below
    if args.report is not None:
        try:
            report.write_report(args.report, rows)
        except OSError as exc:
            return _fail(f"--report {args.report}: cannot write it ({exc.strerror or exc})", 1)
    if not args.quiet and (args.report is not None or (args.verbose and len(rows) > 1)):
        print(f"{PROG}: {report.review_line(rows, below, args.report)}", file=sys.stderr)
    return code


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code
