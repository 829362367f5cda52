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
    from shared.contract.options import OPTION_NAMES
    from shared.contract.settings import _PARSERS, PREFIX
    from shared.errors import CutoutError, _all_subclasses
    from shared.net.webhooks import EVENT_TYPES

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


#: what points outside the repository: the team's folder beside the checkout (by path, or
#: built as ``parent / "shared" / "eval"``) and the team documents. Case-sensitive, so
#: the repository's own docs/api.md and docs/architecture.md never match.
OUTSIDE = re.compile(
    r"\.\./shared\b"
    r"|\bshared/eval\b"
    r"|[\"']shared[\"']\s*/\s*[\"']eval[\"']"
    r"|\bARCHITECTURE\.md\b"
    r"|(?<![\w.-])API\.md\b"
)


def outside_references(text: str) -> list[str]:
    """The lines of ``text`` that point at something users do not have."""
    return [line.strip() for line in text.splitlines() if OUTSIDE.search(line)]


@pytest.mark.parametrize(
    "line",
    [
        "see ../shared/API.md",
        "`../shared/eval/gt` (44 items)",
        "cutout eval --manifest ../shared/eval/gt/manifest.csv",
        'EVAL = ROOT.parent / "shared" / "eval"',
        "Path(__file__).parents[2] / 'shared/eval/photos'",
        "# (ARCHITECTURE.md): a full Redis must refuse writes",
        "defaults as in API.md",
        "| `CUTOUT_PORT` | API port | `8080` | `9000` | API.md | api, up |",
    ],
)
def test_a_pointer_outside_the_repository_is_found(line: str) -> None:
    assert outside_references(f"first line\n{line}\nlast line") == [line.strip()]


@pytest.mark.parametrize(
    "line",
    [
        "the full reference is docs/api.md",
        "[api.md](api.md) and [architecture.md](architecture.md)",
        "docs/architecture.md: the path of a job",
        "OPENAPI.md and ../sharedfolder are other names",
        "from shared.contract.settings import load_settings",
        "shared/stores/jobs.py holds the job records; shared/evaluation.py is not the set",
        'CUTOUT_EVAL_DIR=/path/to/eval cutout eval --manifest "$CUTOUT_EVAL_DIR/gt/manifest.csv"',
    ],
)
def test_the_repositorys_own_names_are_not_taken_for_one(line: str) -> None:
    assert outside_references(line) == []


def test_nothing_outside_tests_points_outside_the_repository() -> None:
    """Users and maintainers have only the repository: no code or doc outside tests/ may
    send them to ../shared (the team's folder beside the checkout) or to the team's
    documents. Tests may read the evaluation set and skip without it."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False, timeout=60
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the tracked files are unknown")
    found = []
    for name in listed.stdout.decode().split("\0"):
        parts = name.split("/")
        if not name or parts[0] == "tests" or "node_modules" in parts:
            continue
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree, not yet committed
        data = path.read_bytes()
        if b"\0" in data:
            continue  # images, model files
        text = data.decode("utf-8", errors="replace")
        found += [f"{name}: {line}" for line in outside_references(text)]
    assert not found, "points outside the repository:\n" + "\n".join(found)
