"""What ``cutout remove`` will do before any model is loaded: the inputs and their outputs,
the options, and the checks that refuse a command line with exit 2."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cutout.commands.flags import option_values

if TYPE_CHECKING:
    from shared.contract.options import ModelCheck, Options

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif"}
FORMAT_BY_SUFFIX = {
    ".png": "png",
    ".webp": "webp",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".zip": "zip",
}

#: (input as given or found, output file or None for stdout)
Plan = list[tuple[str, Path | None]]


class UsageError(Exception):
    """Exit 2: the command line asks for something that cannot be done."""


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


def options_for(
    args: argparse.Namespace, out: str, single: bool, models: ModelCheck | None = None
) -> Options:
    """The run's options; a single output file's extension decides the format; ``models``:
    the custom model names allowed beside the built-in ones."""
    from shared.contract.options import parse_options

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
    return parse_options(values, models=models)


def _folder_images(path: Path) -> list[str]:
    """A folder's image files (by extension, not recursive, hidden ones skipped), sorted."""
    return sorted(
        str(p)
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def plan_paths(paths: list[str]) -> tuple[Plan, bool]:
    """(input, output path or None) pairs, and whether OUT (the last path) is a folder;
    a folder's outputs are named later (:func:`name_outputs`)."""
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
            files.extend(_folder_images(path))
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


def name_outputs(plan: Plan, out_dir: Path, extension: str) -> Plan:
    """Each input's result in ``out_dir``: ``<input stem>.<extension>``; two inputs that
    would write one file, or no input at all, are usage errors."""
    names: dict[str, str] = {}
    for source, _ in plan:
        name = f"{Path(source).stem}.{extension}"
        if name in names:
            raise UsageError(f"{names[name]} and {source} would both write {out_dir / name}")
        names[name] = source
    if not plan:
        raise UsageError("no image files in the input")
    return [(source, out_dir / f"{Path(source).stem}.{extension}") for source, _ in plan]


def check_report(report: str | None, plan: Plan) -> None:
    """``--report``: a CSV file, or ``-`` for stdout when no image goes there; never an
    input, an output or a folder, and its folder must exist (found out now, not after
    the last image)."""
    if report is None:
        return
    if report == "-":
        if any(target is None for _, target in plan):
            raise UsageError("--report - and the image would both go to stdout; name a report file")
        return
    path = Path(report)
    if path.is_dir() or report.endswith(("/", os.sep)):
        raise UsageError(f"--report {report}: a folder; name the CSV file to write")
    if not path.parent.is_dir():
        raise UsageError(f"--report {report}: the folder {path.parent} does not exist")
    resolved = path.resolve()
    for source, target in plan:
        for kind, other in (("input", source), ("output", target)):
            if other is not None and other != "-" and Path(other).resolve() == resolved:
                raise UsageError(f"--report {report} is also an {kind}; name another file")


def read_background(options: Options, settings: object) -> bytes | None:
    """The local run's background: ``--bg-image-url`` fetched under the SSRF guard;
    ``--bg-upload-key`` needs a server (UsageError)."""
    if options.bg_upload_key:
        raise UsageError("--bg-upload-key names a server's upload; use --bg-image-url here")
    if not options.bg_image_url:
        return None
    from shared.net.guard import fetch

    return fetch(
        options.bg_image_url,
        max_bytes=settings.max_upload_bytes,  # type: ignore[attr-defined]
        allowed_networks=settings.allowed_private_networks,  # type: ignore[attr-defined]
    ).body
