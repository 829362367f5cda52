"""``cutout remove IN [IN...] OUT``: background removal on this machine, no server.

- one file into a file (``-`` for stdin or stdout); the format comes from OUT's
  extension (.png, .webp, .jpg/.jpeg; any other extension is refused, and ``--format``
  must agree with it), else from ``--format``, else PNG;
- one or more files or folders into a folder (created if missing; a name with an image
  extension is refused): each result is ``OUT/<input stem>.<format extension>``; a
  folder contributes its image files (by extension, not recursive).

``--margin`` without ``--crop``, ``--fill`` without ``--canvas`` and ``--jobs``/``--threads``
below 1 are usage errors, not silently ignored.

The model is loaded once. Exit codes: 0 done; 2 usage error (bad option, missing input,
two inputs that would write the same file); 3 an input is not a usable image (each one is
named with the reason, the others are still processed); 1 anything else (weights
unavailable).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from cutout.commands import folder_path
from cutout.commands.flags import add_option_flags, option_values
from shared.atomicfile import atomic_write
from shared.errors import CutoutError

if TYPE_CHECKING:
    from shared.options import Options

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif"}
FORMAT_BY_SUFFIX = {
    ".png": "png",
    ".webp": "webp",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".zip": "zip",
}


class UsageError(Exception):
    pass


class OutputError(Exception):
    """An output file that cannot be written (stops the run: rc 1)."""


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (``--jobs 0`` is a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_flag_pairs(args: argparse.Namespace) -> None:
    """Flags that only mean something with another: refused rather than ignored."""
    if getattr(args, "margin", None) is not None and not getattr(args, "crop", False):
        raise UsageError("--margin only applies with --crop (it is the margin of the crop)")
    if getattr(args, "crop_margin", None) is not None and not getattr(args, "crop", False):
        raise UsageError("--crop-margin only applies with --crop")
    if getattr(args, "fill", None) is not None and getattr(args, "canvas", None) is None:
        raise UsageError("--fill only applies with --canvas (the share of the canvas)")


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
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=handler)


def _options(args: argparse.Namespace, out: str, single: bool) -> Options:
    from shared.options import parse_options

    values = option_values(args)
    suffix = Path(out).suffix.lower() if single and out != "-" else ""
    if suffix:
        # the output's extension decides the format; one we cannot write is refused
        # (writing PNG bytes into x.gif would lie about the file)
        guessed = FORMAT_BY_SUFFIX.get(suffix)
        if guessed is None:
            raise UsageError(
                f"{out}: cannot write {suffix} files; name the output .png, .webp, .jpg or .zip"
            )
        given = values.get("format")
        if given is not None and str(given).lower() not in (guessed, suffix.lstrip(".")):
            raise UsageError(f"{out}: the extension says {guessed}, --format says {given}")
        values["format"] = guessed
    return parse_options(values)


def _plan(paths: list[str], out: str) -> tuple[list[tuple[str, Path | None]], bool]:
    """(input, output path or None for stdout) pairs, and whether OUT is a folder."""
    inputs, target = paths[:-1], paths[-1]
    files: list[str] = []
    folder_mode = len(inputs) > 1
    for item in inputs:
        if item == "-":
            if len(inputs) > 1:
                raise UsageError("'-' (stdin) cannot be combined with other inputs")
            files.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            folder_mode = True
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
            )
            files.extend(str(p) for p in found)
        elif path.is_file():
            files.append(item)
        else:
            raise UsageError(f"{item}: no such file or folder")
    if folder_mode:
        if target == "-":
            raise UsageError("several inputs need a folder as OUT, not '-'")
        if Path(target).exists() and not Path(target).is_dir():
            raise UsageError(f"{target}: several inputs need a folder as OUT")
        if not Path(target).exists() and Path(target).suffix.lower() in IMAGE_SUFFIXES:
            # `cutout remove a.jpg b.jpg out/two.png` would make a folder named two.png
            raise UsageError(
                f"{target}: several inputs need a folder as OUT, and this names an image "
                "file; give a folder (created if missing)"
            )
        return [(f, None) for f in files], True
    # a trailing slash names a folder, created if missing (as with several inputs)
    if target != "-" and (Path(target).is_dir() or target.endswith(("/", os.sep))):
        if files[0] == "-":
            raise UsageError("stdin needs an output file name or '-', not a folder")
        return [(files[0], None)], True
    return [(files[0], None if target == "-" else Path(target))], False


def read_background(options: Options, settings: object) -> bytes | None:
    """The local run's background: ``--bg-image-url`` fetched under the SSRF guard;
    ``--bg-upload-key`` needs a server (UsageError)."""
    if options.bg_upload_key:
        raise UsageError("--bg-upload-key names a server's upload; use --bg-image-url here")
    if not options.bg_image_url:
        return None
    from shared.netguard import fetch

    return fetch(
        options.bg_image_url,
        max_bytes=settings.max_upload_bytes,  # type: ignore[attr-defined]
        allowed_networks=settings.allowed_private_networks,  # type: ignore[attr-defined]
    ).body


def handler(args: argparse.Namespace) -> int:
    from shared.errors import FastModeUnavailable, InvalidOption
    from shared.settings import SettingsError, load_settings

    prog = "cutout remove"
    if len(args.paths) < 2:
        print(
            f"{prog}: give an input and an output (IN... OUT; '-' for stdin/stdout)",
            file=sys.stderr,
        )
        return 2
    from cutout.commands.models import allow_local_models

    allow_local_models(args.model_home)  # tuned and added models (cutout tune, models add)
    try:
        settings = load_settings()
        check_flag_pairs(args)
        plan, folder = _plan(args.paths, args.paths[-1])
        options = _options(args, args.paths[-1], single=not folder)
        background = read_background(options, settings)
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (UsageError, InvalidOption) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except CutoutError as exc:  # the background URL could not be fetched
        print(f"{prog}: {exc.message} ({exc.code})", file=sys.stderr)
        return 2
    out_dir = Path(args.paths[-1]) if folder else None
    if out_dir is not None:
        names: dict[str, str] = {}
        for source, _ in plan:
            name = f"{Path(source).stem}.{options.extension}"
            if name in names:
                print(
                    f"{prog}: {names[name]} and {source} would both write {out_dir / name}",
                    file=sys.stderr,
                )
                return 2
            names[name] = source
        plan = [
            (source, out_dir / f"{Path(source).stem}.{options.extension}") for source, _ in plan
        ]
        if not plan:
            print(f"{prog}: no image files in the input", file=sys.stderr)
            return 2
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"{prog}: {out_dir}: cannot make the folder ({exc.strerror})", file=sys.stderr)
            return 1

    from worker.engine import Engine, ensure_model
    from worker.engine.models import MODEL_SPECS

    home = args.model_home or settings.model_home
    cpus = os.cpu_count() or 1
    # several inputs: one stream per core, each with one ONNX Runtime thread, sharing one
    # session (two 1-thread streams out-run one 2-thread stream on small CPUs; see
    # bench/README.md). One input: all cores on it.
    streams = args.jobs or (min(cpus, len(plan)) if len(plan) > 1 else 1)
    threads = args.threads or settings.ort_threads or max(1, cpus // streams)
    engine = Engine(home, threads=threads, device=settings.device)
    try:
        if options.fast:
            # the int8 model is built from the pinned u2net once (worker/engine/fast.py)
            from worker.engine.fast import build_fast_model

            build_fast_model(home, progress=not args.quiet)
            engine.warm_fast(build=False)
        else:
            if options.model in MODEL_SPECS:
                ensure_model(options.model, home, progress=not args.quiet)
            engine.warm([options.model])
    except FastModeUnavailable as exc:
        print(f"{prog}: {exc.message} ({exc.code})", file=sys.stderr)
        return 2
    except CutoutError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 1

    def one(item: tuple[str, Path | None]) -> str | None:
        """Process one input; None when done, else the message of an unusable input."""
        source, target = item
        label = "stdin" if source == "-" else source
        try:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        except OSError as exc:
            return f"{label}: cannot read it ({exc.strerror or exc})"
        try:
            result = engine.process(
                data,
                options,
                max_pixels=settings.max_pixels,
                max_side=settings.max_side,
                max_matting_pixels=settings.max_matting_pixels,
                max_job_bytes=settings.max_job_bytes,
                background=background,
            )
        except CutoutError as exc:
            if exc.status >= 500:
                raise
            return f"{label}: {exc.message} ({exc.code})"
        if target is None:
            sys.stdout.buffer.write(result.data)
            sys.stdout.buffer.flush()
        else:
            try:
                atomic_write(target, result.data)
            except OSError as exc:
                raise OutputError(f"{target}: cannot write it ({exc.strerror or exc})") from None
        return None

    return _run_all(plan, one, streams, quiet=args.quiet or not folder)


def _run_all(
    plan: list[tuple[str, Path | None]],
    one: Callable[[tuple[str, Path | None]], str | None],
    streams: int,
    quiet: bool,
) -> int:
    """Process the plan on ``streams`` threads, with a progress line on stderr (never on
    stdout, which may be the image); the exit code."""
    from cutout.submit.progress import Progress

    prog = "cutout remove"
    progress = Progress("images", len(plan), 0, quiet, prog=prog)
    unusable = 0
    with ThreadPoolExecutor(streams) as pool:
        try:
            for index, ((source, _), problem) in enumerate(
                zip(plan, pool.map(one, plan), strict=True), 1
            ):
                if problem:
                    unusable += 1
                    progress.write(f"{prog}: {problem}")
                progress.update(index, source if not problem else "")
        except (CutoutError, OutputError) as exc:
            pool.shutdown(cancel_futures=True)
            progress.close()
            message = exc.message if isinstance(exc, CutoutError) else str(exc)
            print(f"{prog}: {message}", file=sys.stderr)
            return 1
    progress.close(f"{unusable} unusable" if unusable else "")
    return 3 if unusable else 0
