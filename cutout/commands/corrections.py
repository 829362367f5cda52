"""``cutout corrections export OUT_DIR``: download your corrected jobs (the inputs and
the masks you fixed with the page's editor or PUT /v1/jobs/{id}/mask) from a running
Cutout service as a training set for ``cutout tune``.

OUT_DIR gets images/<job id>.<ext> (the inputs as stored), masks/<job id>.png (the newest
corrected mask of each job, grey, the input's size) and manifest.csv in ``cutout eval``'s
format (image, mask, category; paths relative to OUT_DIR), which ``cutout tune
--manifest OUT_DIR/manifest.csv`` takes as it is. The category is the job's metadata
``category`` when it has one, else --category. Running it again fetches only what is new
or corrected again since; files are written whole, then renamed into place.

Exit codes: 0 done (corrections whose input was deleted meanwhile are left out, and
said so); 1 the service could not be used (unreachable, a refused API key: 401, another
error); 2 usage error; 130 interrupted (run it again to go on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cutout.commands import add_service_flags, folder_path

PROG = "cutout corrections export"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "corrections",
        help="your corrected cutouts as training data",
        description="Corrected masks (PUT /v1/jobs/{id}/mask, the page's editor) as "
        "training data for `cutout tune`.",
    )
    sub = parser.add_subparsers(dest="corrections_command", metavar="ACTION", required=True)
    export = sub.add_parser(
        "export",
        help="download inputs and corrected masks with a manifest for cutout tune",
        usage="%(prog)s OUT_DIR [--since TIME] [--batch ID] [--api URL] [--api-key KEY]",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("out", metavar="OUT_DIR", type=folder_path, help="folder to write")
    export.add_argument(
        "--since",
        metavar="TIME",
        help="only corrections made at or after this RFC 3339 time (2026-12-01T00:00:00Z)",
    )
    export.add_argument("--batch", metavar="ID", help="only the jobs of this batch (bat_…)")
    export.add_argument(
        "--category",
        default="corrections",
        help="the manifest's category for jobs without a metadata category (default: corrections)",
    )
    add_service_flags(export)
    export.add_argument(
        "--concurrency", "-c", type=int, default=4, metavar="N", help="downloads at once"
    )
    export.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    export.set_defaults(func=export_handler)


def export_handler(args: argparse.Namespace) -> int:
    from cutout.client import ApiClient, ClientError
    from cutout.corrections.export import Export, list_corrections
    from cutout.submit.common import error_message

    problem = _usage_problem(args)
    if problem:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 2
    out = Path(args.out)
    client = ApiClient(args.api, args.api_key)
    try:
        client.check_reachable()
        items = list_corrections(client, args.since, args.batch)
        out.mkdir(parents=True, exist_ok=True)
        outcome = Export(client, out, args.category, args.quiet, args.concurrency).run(items)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command to go on", file=sys.stderr)
        return 130
    except ClientError as exc:
        print(f"{PROG}: {error_message(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: cannot write {out}: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        left = f", {len(outcome.gone)} left out (deleted)" if outcome.gone else ""
        print(
            f"{PROG}: {outcome.listed} corrected jobs: {outcome.downloaded} downloaded, "
            f"{outcome.kept} already there{left}; manifest: {out / 'manifest.csv'}",
            file=sys.stderr,
        )
    return 0


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.concurrency < 1:
        return "--concurrency must be at least 1"
    if not str(args.api).startswith(("http://", "https://")):
        return f"--api must be an http(s) URL, got {args.api!r}"
    if args.since:
        from datetime import datetime

        text = args.since.strip()
        try:
            when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None or "T" not in text.upper():
            return f"--since must be an RFC 3339 time such as 2026-12-01T00:00:00Z, got {text!r}"
    if args.batch and not args.batch.startswith("bat_"):
        return f"--batch must be a batch id (bat_…), got {args.batch!r}"
    if not args.category.strip():
        return "--category must not be empty"
    return None
