"""What the CLI and docs/tune.md tell a user holds (issue 29, item 15): the command that
generates the example vertical is given and runs from any folder (``testkit`` is
installed with the package), and the help texts use words a user can act on: no "seed
article", and ``--alpha-matting`` and ``--refine`` say what each does, differently."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cutout.cli import build_parser
from tests.conftest import ROOT

VERTICAL = re.compile(r"^python -m testkit\.vertical .+$", re.MULTILINE)


def subcommand_help(name: str) -> str:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(action.choices[name].format_help().split())


def test_testkit_is_a_package_of_the_distribution() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "testkit*" in config["tool"]["setuptools"]["packages"]["find"]["include"]


def test_tune_md_gives_the_command_that_makes_its_example_vertical(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "tune.md").read_text()
    commands = VERTICAL.findall(text)
    assert commands, "docs/tune.md must say how to generate the example vertical"
    words = shlex.split(commands[0])
    assert words[:4] == ["python", "-m", "testkit.vertical", "watches"]
    options = dict(zip(words[4::2], words[5::2], strict=True))
    # the set section 5 measured: bench/tune.py's defaults, 40 train and 60 test
    bench = (ROOT / "bench" / "tune.py").read_text()
    for flag in ("--n", "--seed", "--test-share"):
        default = re.search(rf'"{flag}", type=\w+, default=([0-9.]+)\)', bench)
        assert default, flag
        assert float(options[flag]) == float(default.group(1)), flag
    n_test = round(int(options["--n"]) * float(options["--test-share"]))
    assert "into 40 train and 60 test" in " ".join(text.split())
    assert (int(options["--n"]) - n_test, n_test) == (40, 60)

    # the command itself, outside the checkout (4 pictures instead of 100: the same code)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    small = [*words[1:4], *(w if w != options["--n"] else "4" for w in words[4:])]
    done = subprocess.run(
        [sys.executable, *small],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "watches"
    for name in ("train.csv", "test.csv", "all.csv"):
        assert (folder / name).is_file(), name
        assert f"`{name}`" in text or f"`watches/{name}`" in text
    assert len(list((folder / "images").glob("*.jpg"))) == 4
    assert len(list((folder / "masks").glob("*.png"))) == 4


def test_eval_help_has_no_seed_article() -> None:
    words = subcommand_help("eval")
    assert "seed" not in words.replace("--seed", "").lower()
    assert "GrabCut" in words
    assert "no model" in words


@pytest.mark.parametrize("command", ["submit", "remove"])
def test_alpha_matting_and_refine_are_described_apart(command: str) -> None:
    words = subcommand_help(command)
    matting = words.split("--alpha-matting, -a ", 1)[1].split(" --alpha-matting-", 1)[0]
    refine = words.split("--refine ", 1)[1].split(" --bg-image-url", 1)[0]
    assert "refine edges" not in matting
    for term in ("rembg", "trimap", "pymatting", "closed-form"):
        assert term in matting, term
    for term in ("Cutout's own", "docs/refine.md", "not with --alpha-matting"):
        assert term in refine, term
    assert "trimap" in words.split("--alpha-matting-foreground-threshold", 1)[1]
