"""``cutout models fetch [NAME...]``, ``build-fast``, ``list``, and custom models:
``add NAME FILE``, ``remove NAME``, ``push NAME --api URL`` (worker/engine/custom.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from cutout.commands import folder_path, settings_or_exit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="fetch and verify model weights",
        description="Model weights in CUTOUT_MODEL_HOME (pinned files, verified by sha256).",
    )
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    fetch = sub.add_parser(
        "fetch",
        help="download and verify weights (all configured models by default)",
        description="Download and verify model weights. Files already present and valid "
        "need no network; a file that does not match its sha256 is deleted and fetched "
        "again.",
    )
    fetch.add_argument("names", nargs="*", metavar="NAME", help="models (default: CUTOUT_MODELS)")
    fetch.add_argument("--home", type=folder_path, help="model folder (default: CUTOUT_MODEL_HOME)")
    fetch.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    fetch.set_defaults(func=fetch_handler)
    build = sub.add_parser(
        "build-fast",
        help="build the fast (int8) u2net from the pinned weights (needs the fast extra)",
        description="Quantize the pinned u2net.onnx to int8 with OpenVINO + NNCF, "
        "calibrated on the project's generated image set, and record what was built "
        "beside it. Nothing happens when a matching fast model is already there.",
    )
    build.add_argument("--home", type=folder_path, help="model folder (default: CUTOUT_MODEL_HOME)")
    build.add_argument("--force", action="store_true", help="rebuild even when it matches")
    build.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    build.set_defaults(func=build_fast_handler)
    listing = sub.add_parser("list", help="built-in and custom models: path, verified, record")
    listing.add_argument(
        "--home", type=folder_path, help="model folder (default: CUTOUT_MODEL_HOME)"
    )
    listing.add_argument("--json", action="store_true", help="custom models' full records")
    listing.set_defaults(func=list_handler)
    from cutout.commands.custom_models import register_custom

    register_custom(sub)


def local_model_check(home: Path | None) -> Callable[[str], bool]:
    """The check of custom model names that the local store holds (tuned and added
    models), for ``parse_options(..., models=...)``."""
    from worker.engine.custom import LocalModels

    def check(name: str) -> bool:
        from shared.contract.settings import SettingsError, load_settings

        try:
            folder = home or load_settings().model_home
        except SettingsError:
            return False
        return LocalModels(Path(folder)).record(name) is not None

    return check


def fetch_handler(args: argparse.Namespace) -> int:
    from shared.errors import ModelUnavailable
    from worker.engine.models import MODEL_SPECS, fetch_models

    settings = settings_or_exit()
    home = args.home or settings.model_home
    names = args.names or list(settings.models)
    unknown = [n for n in names if n not in MODEL_SPECS]
    if unknown:
        print(
            f"cutout models fetch: unknown model(s) {', '.join(unknown)} "
            f"(known: {', '.join(MODEL_SPECS)})",
            file=sys.stderr,
        )
        return 2
    try:
        paths = fetch_models(names, home, progress=not args.quiet)
    except ModelUnavailable as exc:
        print(f"cutout models fetch: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # the model home cannot be made or written
        print(f"cutout models fetch: {home}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}\t{path}\tverified")
    return 0


def build_fast_handler(args: argparse.Namespace) -> int:
    from shared.errors import FastModeUnavailable, ModelUnavailable
    from worker.engine.fast import build_fast_model, fast_paths

    settings = settings_or_exit()
    home = Path(args.home or settings.model_home)
    try:
        xml = build_fast_model(home, progress=not args.quiet, force=args.force)
    except FastModeUnavailable as exc:
        print(f"cutout models build-fast: {exc.message} ({exc.code})", file=sys.stderr)
        return 2
    except ModelUnavailable as exc:
        print(f"cutout models build-fast: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cutout models build-fast: {home}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"u2net-fast\t{xml}\trecord {fast_paths(home)[2]}")
    return 0


def list_handler(args: argparse.Namespace) -> int:
    from worker.engine.models import MODEL_SPECS, verify

    settings = settings_or_exit()
    home = Path(args.home or settings.model_home)
    print("name\tpresent\tverified\tpath")
    for name, spec in MODEL_SPECS.items():
        path = home / spec.filename
        present = path.exists()
        problem = verify(spec, path) if present else "missing"
        verified = "yes" if problem is None else f"no ({problem})" if present else "no"
        print(f"{name}\t{'yes' if present else 'no'}\t{verified}\t{path}")
    from cutout.commands.custom_models import list_custom

    list_custom(home, as_json=args.json)
    return 0
