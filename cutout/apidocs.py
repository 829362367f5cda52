"""Rewrite the generated sections of ``docs/api.md`` from the definitions they describe.

``python -m cutout.apidocs`` rewrites every ``<!-- generated:NAME -->`` …
``<!-- /generated:NAME -->`` section of docs/api.md in place; ``--check`` only says
whether the file is up to date (exit 1 when it is not; tests/unit/test_apidocs.py runs
it). The sections come from the code itself, so the reference cannot drift from it:

- ``commands``: the ``cutout`` command line (``cutout.cli.build_parser``);
- ``endpoints``: the Flask app's ``url_map``, through the OpenAPI document
  (``api.openapi.build_document``): every route, its methods, summary and answers;
- ``options``: ``shared.contract.options.Options`` (names, types, defaults) and its parsers;
- ``errors``: every :class:`shared.errors.CutoutError` code the service can answer or
  store on a job, with its HTTP status and title, and gunicorn's own (``api.server``);
- ``webhook-events``: ``shared.net.webhooks.EVENT_TYPES`` and its signature scheme;
- ``settings``: ``shared.contract.settings`` (every ``CUTOUT_*`` variable), with the meaning and
  default written once in docs/settings.md.

A new section is one entry in :data:`SECTIONS` plus its markers in docs/api.md.
"""

from __future__ import annotations

import argparse
import http
import inspect
import re
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_MD = ROOT / "docs" / "api.md"
SETTINGS_MD = ROOT / "docs" / "settings.md"
_MARKED = re.compile(
    r"(<!-- generated:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)",
    re.DOTALL,
)


def _cell(text: str) -> str:
    """Text for one table cell: one line, ``|`` escaped, reST ``literals`` as Markdown."""
    text = re.sub(r"``([^`]+)``", r"`\1`", " ".join(text.split()))
    return text.replace("|", "\\|")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# -- commands -------------------------------------------------------------------------------


def commands_markdown() -> str:
    from cutout.cli import build_parser

    rows: list[tuple[str, str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    rows.append((f"`{prefix} {name}`", _cell(helps.get(name, ""))))
                    walk(sub, f"{prefix} {name}")

    walk(build_parser(), "cutout")
    return _table(("command", "what it does"), rows)


# -- endpoints ------------------------------------------------------------------------------


def _app() -> Any:
    from api.app import create_app
    from shared.contract.settings import load_settings

    # nothing is contacted while the app is built; the address only has to be well formed
    return create_app(load_settings({"CUTOUT_REDIS_URL": "redis://127.0.0.1:1/0"}))


def endpoints_markdown() -> str:
    from api.openapi import build_document

    document = build_document(_app())
    rows = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = sorted(int(code) for code in operation["responses"] if code.isdigit())
            answers = ", ".join(str(code) for code in codes)
            key = "yes" if operation.get("security") else "no"
            rows.append((f"`{method.upper()} {path}`", _cell(operation["summary"]), answers, key))
    return _table(("route", "what it does", "answers", "API key"), rows)


# -- options --------------------------------------------------------------------------------


#: what a value looks like where the parser's docstring speaks to developers
_VALUES = {
    "bg_image_url": "an http(s) URL of a background image",
    "bg_upload_key": "an `upload_key` of yours from `POST /v1/uploads`",
    "scale": "`10%`–`100%` (or 0.1–1), `original`",
    "position": "`original`, `center`, `X%` or `X% Y%`",
    "crop_margin": "`30px`, `10%`, 2 values (top/bottom, left/right) or 4 (top, right, "
    "bottom, left)",
    "roi": "`x1 y1 x2 y2`, each in `px` (or a bare number) or `%`",
}


def _option_values(name: str, hint: Any) -> str:
    from shared.contract import options
    from shared.contract.optionvalues import MAX_MEGAPIXELS, MIN_MEGAPIXELS, Colour

    if name in _VALUES:
        return _VALUES[name]
    if name == "model":
        return f"{', '.join(options.MODELS)}, or a custom model of `GET /v1/models`"
    if name == "format":
        return ", ".join(f"`{f}`" for f in options.FORMATS) + " (`jpg` means `jpeg`)"
    if name == "score":
        return " or ".join(f"`{level}`" for level in options.SCORES) + " (docs/quality.md)"
    if hint is bool:
        return "`true` or `false`"
    if name.startswith("alpha_matting_"):
        return "0–255"
    if name == "margin":
        return f"0–{options.MAX_MARGIN} pixels"
    if name == "bg_color":
        return _cell(inspect.getdoc(Colour.parse) or "")
    if name == "canvas":
        return f"`WIDTHxHEIGHT`, each side 1–{options.MAX_CANVAS_SIDE}"
    if name == "fill":
        return "a number in (0, 1]"
    if name == "max_megapixels":
        return f"{MIN_MEGAPIXELS:g}–{MAX_MEGAPIXELS:g} (million pixels)"
    return _cell(str(hint))


def _type_name(hint: Any) -> str:
    names = {bool: "bool", int: "integer", float: "number", str: "string"}
    if hint in names:
        return names[hint]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1 and args[0] in names:
        return names[args[0]]
    return "string"


def options_markdown() -> str:
    from shared.contract.options import Options

    defaults = Options().stored()
    rows = []
    for name, field in Options.model_fields.items():
        default = defaults[name]
        shown = "none" if default is None else f"`{str(default).lower()}`"
        if isinstance(default, int | float) and not isinstance(default, bool):
            shown = f"`{default:g}`"
        rows.append(
            (
                f"`{name}`",
                _type_name(field.annotation),
                shown,
                _option_values(name, field.annotation),
            )
        )
    return _table(("option", "type", "default", "values"), rows)


# -- errors ---------------------------------------------------------------------------------


def errors_markdown() -> str:
    import api.app  # noqa: F401 (defines the API's own errors)
    import shared.onnx.modelfile  # noqa: F401
    import worker.engine.session  # noqa: F401
    from api.server import CODES
    from shared.errors import CutoutError, _all_subclasses

    found: dict[str, dict[int, str]] = {CutoutError.code: {CutoutError.status: "Internal error"}}
    for cls in _all_subclasses(CutoutError):
        found.setdefault(cls.code, {}).setdefault(cls.status, cls.title)
    for status, code in CODES.items():
        if code not in found:
            found[code] = {status: http.HTTPStatus(status).phrase + " (answered by gunicorn)"}
    rows = []
    for code in sorted(found):
        statuses = found[code]
        rows.append(
            (
                f"`{code}`",
                ", ".join(str(s) for s in sorted(statuses)),
                _cell("; ".join(statuses[s] for s in sorted(statuses))),
            )
        )
    return _table(("code", "HTTP status", "title"), rows)


# -- webhooks -------------------------------------------------------------------------------


def webhook_events_markdown() -> str:
    from shared.net import webhooks

    events = ", ".join(f"`{event}`" for event in sorted(webhooks.EVENT_TYPES))
    signature = (inspect.getdoc(webhooks) or "").split("\n\n")[1]
    return f"Event types: {events}.\n\n{_cell(signature)}\n"


# -- settings -------------------------------------------------------------------------------


def _settings_rows() -> dict[str, tuple[str, str]]:
    """docs/settings.md's rows: variable → (meaning, default)."""
    rows = {}
    for line in SETTINGS_MD.read_text().splitlines():
        match = re.match(r"^\| `(CUTOUT_[A-Z0-9_]+)` \| (.*) \|$", line)
        if match:
            cells = match.group(2).split(" | ")
            rows[match.group(1)] = (cells[0], cells[1])
    return rows


def settings_markdown() -> str:
    from shared.contract.settings import _PARSERS, PREFIX

    described = _settings_rows()
    rows = []
    for suffix in _PARSERS:
        name = PREFIX + suffix
        if name not in described:
            raise SystemExit(f"docs/settings.md has no row for {name}")
        meaning, default = described[name]
        rows.append((f"`{name}`", meaning, default))
    return _table(("variable", "meaning", "default"), rows)


#: section name → what writes it
def schemas_markdown() -> str:
    from shared.contract.shapes.markdown import shapes_markdown

    return shapes_markdown()


SECTIONS: dict[str, Callable[[], str]] = {
    "commands": commands_markdown,
    "endpoints": endpoints_markdown,
    "options": options_markdown,
    "errors": errors_markdown,
    "webhook-events": webhook_events_markdown,
    "settings": settings_markdown,
    "schemas": schemas_markdown,
}


def render(text: str) -> str:
    """``text`` with every generated section rewritten (each of SECTIONS must be there)."""
    seen = {match.group("name") for match in _MARKED.finditer(text)}
    unknown = seen - set(SECTIONS)
    missing = set(SECTIONS) - seen
    if unknown or missing:
        raise SystemExit(
            f"docs/api.md: sections without a generator {sorted(unknown)}, "
            f"generators without a section {sorted(missing)}"
        )
    return _MARKED.sub(lambda m: m.group(1) + SECTIONS[m.group("name")]() + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cutout.apidocs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    parser.add_argument("--file", type=Path, default=API_MD, help="default: docs/api.md")
    args = parser.parse_args(argv)
    text = args.file.read_text()
    fresh = render(text)
    if args.check:
        if fresh != text:
            print(f"{args.file} is out of date: run python -m cutout.apidocs", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        args.file.write_text(fresh)
        print(f"{args.file}: rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
