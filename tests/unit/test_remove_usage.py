"""``cutout remove`` refuses what it would otherwise get silently wrong (exit 2, nothing
written): an output extension it cannot write, an image file name as the folder of
several results, flags that only apply with another, and ``--jobs``/``--threads`` below 1.
All refused before any model is loaded: no weights needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from cutout.cli import main


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    paths = []
    for name in ("a.jpg", "b.jpg"):
        path = tmp_path / name
        Image.new("RGB", (8, 8), "red").save(path)
        paths.append(path)
    return paths


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["remove", "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cutout remove: "), err
    return err


@pytest.mark.parametrize("name", ["x.gif", "x.bmp", "x.tif", "x.txt"])
def test_an_output_extension_it_cannot_write_is_refused(
    photos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / name
    err = refused(capsys, str(photos[0]), str(out))
    assert Path(name).suffix in err
    assert ".png" in err
    assert not out.exists()


def test_an_extension_and_a_format_that_disagree_are_refused(
    photos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.png"
    err = refused(capsys, str(photos[0]), str(out), "--format", "webp")
    assert "webp" in err
    assert not out.exists()


def test_several_inputs_into_an_image_file_name_are_refused(
    photos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "two.png"
    err = refused(capsys, *map(str, photos), str(out))
    assert "folder" in err
    assert not out.exists()
    assert not out.parent.exists()


@pytest.mark.parametrize(
    ("flags", "needs"),
    [
        (["--margin", "5"], "--crop"),
        (["--crop-margin", "10px"], "--crop"),
        (["--fill", "0.5"], "--canvas"),
    ],
)
def test_a_flag_without_the_flag_it_belongs_to_is_refused(
    photos: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    needs: str,
) -> None:
    out = tmp_path / "x.png"
    err = refused(capsys, str(photos[0]), str(out), *flags)
    assert needs in err
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--jobs", "--threads"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_jobs_and_threads_below_one_are_refused(
    photos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["remove", "-q", str(photos[0]), str(tmp_path / "x.png"), flag, value])
    assert exited.value.code == 2
    assert "at least 1" in capsys.readouterr().err
