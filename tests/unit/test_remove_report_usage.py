"""``cutout remove --report`` and ``--score``: what is refused before any model is loaded
(exit 2, nothing written), and every processing option has its flag."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from PIL import Image

from cutout.cli import build_parser, main
from shared.contract.options import SCORES, Options


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8), "red").save(path)
    return path


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["remove", "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cutout remove: "), err
    return err


def test_a_report_on_stdout_beside_the_image_on_stdout_is_refused(
    photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(capsys, str(photo), "-", "--report", "-")
    assert "stdout" in err
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("where", ["missing/report.csv", "folder", "folder/", "a.jpg", "x.png"])
def test_a_report_that_cannot_be_the_report_is_refused(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "folder").mkdir()
    before = photo.read_bytes()
    err = refused(capsys, str(photo), str(tmp_path / "x.png"), "--report", str(tmp_path / where))
    assert "--report" in err
    assert photo.read_bytes() == before  # an input is never overwritten by the report
    assert not (tmp_path / "x.png").exists()


def test_a_report_named_like_one_of_a_folders_outputs_is_refused(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    err = refused(capsys, str(photo), str(out), "--report", str(out / "a.png"))
    assert "output" in err


def test_an_unknown_score_level_is_a_usage_error(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["remove", "-q", str(photo), str(tmp_path / "x.png"), "--score", "great"])
    assert exited.value.code == 2
    assert "basic" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["remove", "submit"])
def test_every_option_is_a_flag(command: str) -> None:
    """An option added to shared.contract.options without its flag would be out of reach of the
    command line (``--score`` was, at first)."""
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    sub = commands.choices[command]
    flags = {name for action in sub._actions for name in action.option_strings}
    for name in Options.model_fields:
        assert "--" + name.replace("_", "-") in flags, name
    score = next(a for a in sub._actions if "--score" in a.option_strings)
    assert tuple(score.choices) == SCORES
    assert "docs/quality.md" in score.help
