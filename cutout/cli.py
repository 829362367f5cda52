"""``cutout`` command line: each subcommand lives in ``cutout/commands/<name>.py``.

A command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning the exit code). Heavy imports
(onnxruntime, Flask) happen inside the handlers so that ``cutout --help`` stays fast and
``cutout api`` never loads the engine.

Exit codes: 0 done, 2 usage error, 3 an input is not a usable image, 1 anything else.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cutout import __version__

# which module registers which command (one module may register several)
MODULES = ("service", "models", "remove", "submit", "eval", "tune", "corrections")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cutout", description="Background removal with U²-Net, locally or as a service."
    )
    parser.add_argument("--version", action="version", version=f"cutout {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in MODULES:
        try:
            module = importlib.import_module(f"cutout.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cutout.commands.{name}":
                raise
            continue  # not built yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cutout.envcheck import warn_unknown_variables

    # before anything else, so that API, worker and every command say it (stderr)
    warn_unknown_variables(
        emit=lambda message: print(f"cutout: warning: {message}", file=sys.stderr)
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
