"""``cutout remove`` with the real model (u2netp: the model does not matter here).

Most cases call ``cutout.cli.main`` in this process; stdin/stdout and usage errors run the
real command in a subprocess.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cutout.cli import main
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def weights(model_home: Path) -> Path:
    from worker.engine.models import MODEL_SPECS, verify

    spec = MODEL_SPECS["u2netp"]
    problem = verify(spec, model_home / spec.filename)
    if problem:
        pytest.skip(f"u2netp weights not in {model_home} ({problem}); run `cutout models fetch`")
    return model_home


def subject_photo(width: int = 160, height: int = 120) -> Image.Image:
    """A dark rounded object on a light studio backdrop: something U²-Net cuts out."""
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((xx - width / 2) / (width / 4)) ** 2 + ((yy - height / 2) / (height / 3)) ** 2 < 1
    pixels = np.full((height, width, 3), (235, 235, 230), np.uint8)
    pixels[inside] = (150, 40, 30)
    return Image.fromarray(pixels)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "mug.jpg"
    subject_photo().save(path, quality=95)
    return path


def run(*args: str) -> int:
    return main(["remove", "-q", "--model", "u2netp", *args])


def opened(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def test_one_file(weights: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert run(str(photo), str(out)) == 0
    image = opened(out)
    assert image.format == "PNG"
    assert image.mode == "RGBA"
    assert image.size == (160, 120)
    alpha = np.asarray(image.getchannel("A"))
    assert alpha[60, 80] > 200  # the object
    assert alpha[5, 5] < 30  # the backdrop


def test_format_from_the_output_extension(weights: Path, photo: Path, tmp_path: Path) -> None:
    assert run(str(photo), str(tmp_path / "out.webp")) == 0
    assert opened(tmp_path / "out.webp").format == "WEBP"


def test_stdin_to_stdout(weights: Path, photo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cutout", "remove", "-q", "--model", "u2netp", "-", "-"],
        input=photo.read_bytes(),
        capture_output=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    image = Image.open(io.BytesIO(done.stdout))
    assert image.format == "PNG"
    assert image.size == (160, 120)


def test_folder_into_folder(weights: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    subject_photo().save(source / "a.jpg")
    subject_photo(100, 100).save(source / "b.png")
    subject_photo(90, 70).save(source / "c.webp")
    (source / "notes.txt").write_text("not an image, and not picked up by its extension")
    out = tmp_path / "out"
    assert run(str(source), str(out), "--format", "webp") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.webp", "b.webp", "c.webp"]
    assert opened(out / "b.webp").size == (100, 100)


def test_several_files_into_a_folder(weights: Path, photo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.png"
    subject_photo(80, 60).save(other)
    out = tmp_path / "results"
    assert run(str(photo), str(other), str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mug.png", "other.png"]


def test_one_file_into_an_existing_folder(weights: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "existing"
    out.mkdir()
    assert run(str(photo), str(out), "--format", "jpeg", "--bg-color", "#ffffff") == 0
    assert opened(out / "mug.jpg").mode == "RGB"


def test_a_trailing_slash_names_a_new_folder(weights: Path, photo: Path, tmp_path: Path) -> None:
    # it used to become a PNG file named "new"
    assert run(str(photo), f"{tmp_path / 'new'}/") == 0
    assert opened(tmp_path / "new" / "mug.png").mode == "RGBA"


def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(
    weights: Path, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a Python traceback (FileExistsError) before: a file stands where a folder must be
    target = tmp_path / "mug.jpg" / "out.png"
    (tmp_path / "mug.jpg").write_bytes(photo.read_bytes())
    assert run(str(photo), str(target)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{target}: cannot write it" in err
    assert "Traceback" not in err


def test_a_fifo_output_is_written_into(weights: Path, photo: Path, tmp_path: Path) -> None:
    # the rename replaced the FIFO (as root: `cutout remove x.jpg /dev/null` replaced
    # /dev/null itself)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert run(str(photo), str(fifo)) == 0
    reader.join(30)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert Image.open(io.BytesIO(got[0])).mode == "RGBA"


def test_non_image_names_the_file_and_exits_3(
    weights: Path, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("this is not a photo")
    out = tmp_path / "out"
    assert run(str(bad), str(photo), str(out)) == 3
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "unsupported_format" in err
    assert (out / "mug.png").exists()  # the good input was still processed


def test_truncated_image_exits_3(weights: Path, photo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(photo.read_bytes()[:300])
    assert run(str(bad), str(tmp_path / "cut.png")) == 3


@pytest.mark.parametrize(
    "args",
    [
        ["remove"],  # no paths
        ["remove", "only-one-path"],
        ["remove", "--no-such-flag", "a", "b"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cutout", *args],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2


@pytest.mark.parametrize(
    "extra",
    [
        ["--format", "gif"],
        ["--format", "jpeg"],  # jpeg without a background colour
        ["--bg-color", "purple-ish"],
        ["--canvas", "big"],
        ["--fill", "1.5"],
        ["--alpha-matting-erode-size", "-3"],
        ["--model", "u3net"],
    ],
)
def test_bad_options_exit_2(
    photo: Path, tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["remove", "-q", str(photo), str(tmp_path / "x.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cutout remove: ")
    assert extra[0].lstrip("-").replace("-", "_") in err or "model" in err


def test_missing_input_exits_2(tmp_path: Path) -> None:
    assert run(str(tmp_path / "absent.jpg"), str(tmp_path / "x.png")) == 2


def test_same_output_name_twice_exits_2(photo: Path, tmp_path: Path) -> None:
    twin = tmp_path / "mug.png"
    subject_photo().save(twin)
    assert run(str(photo), str(twin), str(tmp_path / "out")) == 2


def test_fast_with_u2netp_is_refused_as_a_usage_error(
    weights: Path, photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "x.png"
    assert main(["remove", "-q", "--fast", "-m", "u2netp", str(photo), str(out)]) == 2
    assert not out.exists()


def _alpha(path: Path) -> np.ndarray:
    return np.asarray(opened(path).getchannel("A")).astype(int)


def test_option_flags(weights: Path, photo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    assert run(str(photo), str(plain)) == 0

    mask = tmp_path / "mask.png"
    assert run(str(photo), str(mask), "--mask-only") == 0
    assert opened(mask).mode == "L"
    np.testing.assert_array_equal(np.asarray(opened(mask)), _alpha(plain))

    smooth = tmp_path / "smooth.png"
    assert run(str(photo), str(smooth), "--post-process") == 0
    assert set(np.unique(_alpha(smooth))) <= {0, 255}

    coloured = tmp_path / "coloured.png"
    assert run(str(photo), str(coloured), "--bg-color", "0,255,0") == 0
    image = opened(coloured)
    assert image.getpixel((2, 2)) == (0, 255, 0, 255)
    assert (_alpha(coloured) == 255).all()

    cropped = tmp_path / "cropped.png"
    assert run(str(photo), str(cropped), "--crop", "--margin", "3") == 0
    width, height = opened(cropped).size
    assert 80 <= width < 160
    assert 80 <= height < 120

    canvas = tmp_path / "canvas.png"
    assert run(str(photo), str(canvas), "--canvas", "400x300", "--fill", "0.5") == 0
    image = opened(canvas)
    assert image.size == (400, 300)
    left, top, right, bottom = image.getchannel("A").point(lambda v: 255 if v > 10 else 0).getbbox()
    assert max((right - left) / 400, (bottom - top) / 300) == pytest.approx(0.5, abs=0.03)


@pytest.mark.slow
def test_alpha_matting_flags(weights: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "matted.png"
    args = ["--alpha-matting", "--alpha-matting-foreground-threshold", "230"]
    args += ["-ab", "15", "--alpha-matting-erode-size", "5"]
    assert run(str(photo), str(out), *args) == 0
    alpha = _alpha(out)
    assert alpha[60, 80] > 200
    assert alpha[5, 5] < 30
