"""``cutout submit DIR --out OUT``: send a folder of images to a running Cutout service.

The images of DIR (by extension; ``--recursive`` for sub-folders) are uploaded straight
to storage through signed URLs, submitted as ONE batch, and each result is downloaded
as soon as it is ready to ``OUT/<input stem>.<format extension>`` (named like ``cutout
remove``'s). At the end ``OUT/report.csv`` lists every file: job id, status, error code
and message, output file, and the cutout's quality score, review mark and flags
(docs/quality.md); the last line counts the cutouts the service marked for review.

Re-running with the same ``--out`` resumes: ``OUT/.cutout-submit.json`` records the
batch, which file is which item, and which results were downloaded, and is rewritten
atomically as things change, so Ctrl-C (or a crash) at any point leaves a state to resume
from. Nothing is submitted twice; ``--retry-failed`` sends the failures again as a new
batch (after you fixed or replaced the files).

Exit codes: 0 every image done; 1 some failed (report.csv says which and why) or the
service could not be used; 2 usage error; 130 interrupted (run it again to resume).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cutout.commands import add_service_flags
from cutout.commands.flags import add_option_flags, option_values
from cutout.submit.common import PROG, SubmitError, UsageError, error_message
from cutout.submit.run import Submit
from cutout.submit.state import State, list_images, locked


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="submit a folder of images to a running service and download the results",
        usage="%(prog)s DIR --out OUT [--api URL] [--api-key KEY] [options]",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="folder of images")
    parser.add_argument("--out", "-o", required=True, metavar="OUT", help="folder for results")
    add_service_flags(parser)
    parser.add_argument(
        "--recursive", "-r", action="store_true", help="include sub-folders (mirrored in OUT)"
    )
    parser.add_argument(
        "--concurrency",
        "-c",
        type=int,
        default=8,
        metavar="N",
        help="uploads and downloads at once (default 8)",
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="submit the failed images again"
    )
    parser.add_argument("--webhook-url", metavar="URL", help="called once the batch completes")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_option_flags(parser)
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from shared.errors import InvalidOption

    try:
        source, out, given = _checked(args)
    except InvalidOption as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    try:
        with locked(out):
            return _run(args, source, out, given)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


def _checked(args: argparse.Namespace) -> tuple[Path, Path, dict[str, object]]:
    """DIR, OUT and the options given, checked before anything is written or sent
    (UsageError, or InvalidOption with the service's own words)."""
    from shared.contract.options import parse_options

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    source = Path(args.dir)
    if not source.is_dir():
        raise UsageError(f"{args.dir}: not a folder")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{args.out}: not a folder")
    if out.resolve() == source.resolve():
        raise UsageError("--out must be another folder than DIR")
    given = option_values(args)
    parse_options(given)
    if not args.api.startswith(("http://", "https://")):
        raise UsageError(f"--api must be an http(s) URL, got {args.api!r}")
    return source, out, given


def _run(args: argparse.Namespace, source: Path, out: Path, given: dict[str, object]) -> int:
    """Plan (usage errors first: they need no server), check the service answers, then
    upload, submit and download, leaving a state to resume from when it stops."""
    from cutout.client import ApiClient, ClientError
    from shared.errors import InvalidOption

    client = ApiClient(args.api, args.api_key)
    try:
        state = State.open(out, args, source, given)
        files = list_images(source, out, args.recursive)
        run = Submit(args, client, state, source, out)
        run.plan(files)
    except (UsageError, InvalidOption) as exc:
        message = exc.message if isinstance(exc, InvalidOption) else str(exc)
        print(f"{PROG}: {message}", file=sys.stderr)
        return 2
    try:
        client.check_reachable()
    except ClientError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    try:
        return run.execute()
    except KeyboardInterrupt:
        run.interrupted()
        return 130
    except (SubmitError, ClientError) as exc:
        run.stop()
        print(f"{PROG}: {error_message(exc)}", file=sys.stderr)
        print(
            f"{PROG}: progress is saved in {state.path}; run the same command to resume",
            file=sys.stderr,
        )
        return 1
