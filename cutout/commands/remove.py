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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from cutout.commands import folder_path
from shared.atomicfile import atomic_write

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

# flag → option name (shared.options); every option of docs/api.md
_VALUE_OPTIONS = {
    "model": "model",
    "format": "format",
    "bg_color": "bg_color",
    "alpha_matting_foreground_threshold": "alpha_matting_foreground_threshold",
    "alpha_matting_background_threshold": "alpha_matting_background_threshold",
    "alpha_matting_erode_size": "alpha_matting_erode_size",
    "margin": "margin",
    "canvas": "canvas",
    "fill": "fill",
    **{name: name for name in ("bg_image_url", "bg_upload_key", "scale", "position")},
    **{name: name for name in ("crop_margin", "roi", "max_megapixels")},
}
_FLAG_OPTIONS = ("mask_only", "post_process", "alpha_matting", "crop", "fast", "shadow", "refine")


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


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """The processing options of docs/api.md as flags (shared with ``cutout submit``)."""
    group = parser.add_argument_group("processing options (docs/api.md)")
    group.add_argument(
        "-m", "--model", help="u2net (default), u2netp, or a custom model (cutout models list)"
    )
    group.add_argument(
        "-f", "--format", help="png (default), webp, jpeg (needs a background) or zip"
    )
    group.add_argument("--bg-color", "-bgc", help="#RRGGBB, #RRGGBBAA or r,g,b[,a]")
    group.add_argument("--mask-only", "-om", action="store_true", help="the 8-bit mask only")
    group.add_argument("--post-process", "-ppm", action="store_true", help="smooth the mask")
    group.add_argument("--alpha-matting", "-a", action="store_true", help="refine edges")
    group.add_argument(
        "--alpha-matting-foreground-threshold", "-af", metavar="N", help="default 240"
    )
    group.add_argument(
        "--alpha-matting-background-threshold", "-ab", metavar="N", help="default 10"
    )
    group.add_argument("--alpha-matting-erode-size", "-ae", metavar="N", help="default 10")
    group.add_argument("--crop", action="store_true", help="crop to the subject")
    group.add_argument("--margin", metavar="PX", help="pixels kept around the subject")
    group.add_argument("--canvas", metavar="WxH", help="place the subject on a canvas")
    group.add_argument("--fill", metavar="F", help="share of the canvas the subject fills")
    group.add_argument(
        "--fast",
        action="store_true",
        help="int8 u2net: about 2x faster, a slightly different cutout (needs the fast extra)",
    )
    group.add_argument(
        "--refine",
        action="store_true",
        help="a better edge than rembg's: edge fitted to the photo, edge colours cleaned "
        "(docs/refine.md)",
    )
    add_catalogue_flags(group)


def add_catalogue_flags(group: argparse._ArgumentGroup) -> None:
    """The catalogue options of issue 16 (docs/api.md)."""
    group.add_argument("--bg-image-url", metavar="URL", help="a background image, scaled to cover")
    group.add_argument("--bg-upload-key", metavar="KEY", help="a background from POST /v1/uploads")
    group.add_argument("--shadow", action="store_true", help="a soft drop shadow under the subject")
    group.add_argument("--scale", metavar="PCT", help="subject's share of the canvas, 10%%-100%%")
    group.add_argument("--position", metavar="POS", help="center, or 'X%% Y%%' of the free space")
    group.add_argument("--crop-margin", metavar="M", help="with --crop: 30px, 10%% or 2/4 values")
    group.add_argument("--roi", metavar="BOX", help="'x1 y1 x2 y2' (px or %%): only there")
    group.add_argument("--max-megapixels", metavar="MP", help="downscale the input to this size")


def option_values(args: argparse.Namespace) -> dict[str, object]:
    """The options given by :func:`add_option_flags`' flags (unset ones left out)."""
    values: dict[str, object] = {}
    for attr, name in _VALUE_OPTIONS.items():
        value = getattr(args, attr)
        if value is not None:
            values[name] = value
    for name in _FLAG_OPTIONS:
        if getattr(args, name):
            values[name] = True
    return values


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
    from shared.errors import CutoutError, FastModeUnavailable, InvalidOption
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

    unusable = 0
    show = folder and not args.quiet and sys.stderr.isatty()
    with ThreadPoolExecutor(streams) as pool:
        try:
            for index, ((source, _), problem) in enumerate(
                zip(plan, pool.map(one, plan), strict=True), 1
            ):
                if problem:
                    unusable += 1
                    print(f"{prog}: {problem}", file=sys.stderr)
                elif show:
                    print(f"[{index}/{len(plan)}] {source}", file=sys.stderr)
        except CutoutError as exc:
            pool.shutdown(cancel_futures=True)
            print(f"{prog}: {exc.message}", file=sys.stderr)
            return 1
        except OutputError as exc:
            pool.shutdown(cancel_futures=True)
            print(f"{prog}: {exc}", file=sys.stderr)
            return 1
    return 3 if unusable else 0
