"""docs/api.md is the user's complete reference, and its generated parts match the code.

``python -m cutout.apidocs`` writes the sections between ``<!-- generated:NAME -->``
markers from the routes, options, errors, webhook events, settings and commands; this
fails when someone changed one of those without running it.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cutout import apidocs
from tests.conftest import ROOT

API_MD = ROOT / "docs" / "api.md"


def generated(name: str) -> str:
    text = API_MD.read_text()
    match = re.search(
        rf"<!-- generated:{name} -->\n(.*?)<!-- /generated:{name} -->", text, re.DOTALL
    )
    assert match, f"docs/api.md has no generated section {name}"
    return match.group(1)


def test_docs_api_md_is_up_to_date() -> None:
    text = API_MD.read_text()
    assert apidocs.render(text) == text, "docs/api.md is stale: run python -m cutout.apidocs"


def test_the_check_command_fails_on_a_stale_file(tmp_path) -> None:
    stale = tmp_path / "api.md"
    stale.write_text(API_MD.read_text().replace("| `CUTOUT_PORT` |", "| `CUTOUT_PROT` |"))
    check = [sys.executable, "-m", "cutout.apidocs", "--check", "--file", str(stale)]
    done = subprocess.run(check, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "out of date" in done.stderr
    subprocess.run(check[:3] + check[4:], cwd=ROOT, check=True, timeout=300)
    assert stale.read_text() == API_MD.read_text()


def test_every_route_of_the_app_is_listed() -> None:
    from api.openapi import build_document

    section = generated("endpoints")
    for path, operations in build_document(apidocs._app())["paths"].items():
        for method in operations:
            assert f"| `{method.upper()} {path}` |" in section


def test_every_option_error_code_setting_and_event_is_listed() -> None:
    from shared.errors import CutoutError, _all_subclasses
    from shared.options import OPTION_NAMES
    from shared.settings import _PARSERS, PREFIX
    from shared.webhooks import EVENT_TYPES

    options = generated("options")
    assert all(f"| `{name}` |" in options for name in OPTION_NAMES)
    errors = generated("errors")
    for cls in _all_subclasses(CutoutError):
        assert f"| `{cls.code}` |" in errors
    assert "| `invalid_image` | 422 |" in errors
    settings = generated("settings")
    assert all(f"| `{PREFIX}{suffix}` |" in settings for suffix in _PARSERS)
    events = generated("webhook-events")
    assert all(f"`{event}`" in events for event in EVENT_TYPES)
    assert "webhook-signature" in events
    assert "| `cutout submit` |" in generated("commands")


def test_a_section_needs_both_its_markers_and_its_generator() -> None:
    with pytest.raises(SystemExit, match="generators without a section"):
        apidocs.render("no markers at all\n")
    text = API_MD.read_text() + "<!-- generated:nothing -->\n<!-- /generated:nothing -->\n"
    with pytest.raises(SystemExit, match=r"sections without a generator \['nothing'\]"):
        apidocs.render(text)


def test_users_are_pointed_at_the_projects_own_reference() -> None:
    for name in ("README.md", "docs/api.md", "docs/settings.md", "docs/security.md"):
        assert "../shared/API.md" not in (ROOT / name).read_text(), name
    assert "docs/api.md" in (ROOT / "README.md").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "cutout", "remove", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "processing options (docs/api.md)" in done.stdout
    assert "API.md" not in done.stdout.replace("docs/api.md", "")
