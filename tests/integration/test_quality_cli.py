"""The quality score on the command line (issue 26): ``cutout remove --report``, ``-v``
and ``--score``, run as a user runs them (a subprocess, the real u2netp weights).

``CUTOUT_REVIEW_BELOW`` is set in the command's environment: ``review`` must follow it.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.conftest import ROOT
from tests.integration.test_remove_cli import weights  # noqa: F401

COLUMNS = ("input", "output", "status", "score", "review", "flags", "error_code")


def good_photo() -> Image.Image:
    """A red box on a light backdrop: u2netp scores it about 0.92."""
    image = Image.new("RGB", (200, 200), (235, 235, 230))
    ImageDraw.Draw(image).rounded_rectangle((60, 40, 140, 170), radius=12, fill=(200, 30, 30))
    return image


def blank_photo() -> Image.Image:
    """One colour all over: nothing to cut out."""
    return Image.new("RGB", (64, 48), (200, 200, 200))


def remove(
    *args: str, below: str = "0.85", cwd: Path = ROOT, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, CUTOUT_REVIEW_BELOW=below, CUTOUT_ORT_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "cutout", "remove", "--model", "u2netp", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=300,
        check=False,
    )


def rows_of(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows, text
    assert set(COLUMNS) <= set(rows[0]), list(rows[0])
    return rows


def assert_scored(row: dict[str, str], below: float) -> float:
    """A succeeded row: score in 0..1, ``review`` exactly ``score < below``."""
    assert row["status"] == "succeeded", row
    assert row["error_code"] == ""
    score = float(row["score"])
    assert 0 <= score <= 1
    assert row["review"] == ("true" if score < below else "false"), row
    return score


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    source = tmp_path / "in"
    source.mkdir()
    good_photo().save(source / "box.png")
    blank_photo().save(source / "blank.png")
    (source / "broken.jpg").write_text("this is not a photo")
    return source


@pytest.mark.parametrize("below", [0.5, 0.95])
def test_a_folder_report_has_a_row_per_input_and_review_follows_the_setting(
    weights: Path,  # noqa: F811
    folder: Path,
    tmp_path: Path,
    below: float,
) -> None:
    out, report = tmp_path / "out", tmp_path / "report.csv"

    done = remove(str(folder), str(out), "--report", str(report), below=str(below))

    err = done.stderr.decode()
    assert done.returncode == 3, err  # the broken file: named, the others still done
    assert "Traceback" not in err
    rows = {row["input"]: row for row in rows_of(report.read_text())}
    # the path as found in the folder given, one row per input, the failure included
    assert sorted(rows) == [str(folder / n) for n in ("blank.png", "box.png", "broken.jpg")]

    box = rows[str(folder / "box.png")]
    score = assert_scored(box, below)
    assert box["output"] == str(out / "box.png")
    assert (out / "box.png").is_file()
    assert box["review"] == ("false" if below == 0.5 else "true")  # the setting decides

    blank = rows[str(folder / "blank.png")]
    assert assert_scored(blank, below) == 0
    assert blank["review"] == "true"
    assert "no_subject" in blank["flags"].split(" ")

    broken = rows[str(folder / "broken.jpg")]
    assert broken["status"] == "failed"
    assert broken["error_code"] == "unsupported_format"
    assert broken["output"] == broken["score"] == broken["review"] == broken["flags"] == ""
    assert not (out / "broken.png").exists()

    need = 1 if below == 0.5 else 2
    assert f"{need} of 2 cutouts need a look (score below {below:g}): see {report}" in err
    assert score > 0.5  # the box is a clear cutout: not all scores are zero


def test_one_file_prints_its_score_with_v_and_full_adds_the_second_opinion(
    weights: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    blank_photo().save(photos / "wall.jpg")

    # the input as typed (relative), the report on stdout, the image in a file
    done = remove(
        "photos/wall.jpg", "wall.png", "-v", "--score", "full", "--report", "-", cwd=tmp_path
    )

    err = done.stderr.decode()
    assert done.returncode == 0, err
    [row] = rows_of(done.stdout.decode())
    assert row["input"] == "photos/wall.jpg"
    assert row["output"] == "wall.png"
    assert assert_scored(row, 0.85) == 0
    flags = row["flags"].split(" ")
    assert "no_subject" in flags
    assert "models_disagree" in flags  # only the full score has a second opinion
    assert "photos/wall.jpg: score 0.0 (review: below 0.85); flags: " in err
    assert "no_subject" in err
    assert Image.open(tmp_path / "wall.png").mode == "RGBA"


def test_stdin_to_stdout_with_v_keeps_stdout_the_image(weights: Path) -> None:  # noqa: F811
    data = io.BytesIO()
    good_photo().save(data, "PNG")

    done = remove("-", "-", "-v", stdin=data.getvalue())

    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert Image.open(io.BytesIO(done.stdout)).size == (200, 200)
    assert err.startswith("cutout remove: stdin: score 0.")


def test_a_run_stopped_by_an_output_it_cannot_write_still_reports_every_input(
    weights: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.csv"
    source.mkdir()
    for name in ("a", "b", "c"):
        good_photo().save(source / f"{name}.png")
    (out / "b.png").mkdir(parents=True)  # a folder where b's result must go

    done = remove(str(source), str(out), "-j", "1", "--report", str(report))

    assert done.returncode == 1, done.stderr.decode()
    rows = {Path(row["input"]).name: row for row in rows_of(report.read_text())}
    assert_scored(rows["a.png"], 0.85)
    assert rows["b.png"]["status"] == "failed"
    assert rows["b.png"]["error_code"] == "write_error"
    assert rows["c.png"]["status"] == "not_processed"
    assert not (out / "c.png").exists()


def test_ctrl_c_stops_at_once_and_the_report_lists_every_input(
    weights: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Ctrl-C used to let the queue run to its end (the pool's exit waited for it) and
    wrote nothing; now the images being made finish and the rest are ``not_processed``."""
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.csv"
    source.mkdir()
    count = 120
    for i in range(count):
        good_photo().save(source / f"p{i:03d}.png")
    env = dict(os.environ, CUTOUT_ORT_THREADS="1")
    command = [sys.executable, "-m", "cutout", "remove", "-q", "-m", "u2netp", "-j", "1"]
    process = subprocess.Popen(
        [*command, str(source), str(out), "--report", str(report)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        while not (out / "p000.png").exists() and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err.decode()
    assert "interrupted after" in err.decode()
    rows = rows_of(report.read_text())
    assert [Path(row["input"]).name for row in rows] == [f"p{i:03d}.png" for i in range(count)]
    for row in rows:
        made = (out / Path(row["input"]).name).exists()
        assert row["status"] == ("succeeded" if made else "not_processed"), row
        if made:
            assert_scored(row, 0.85)
    assert rows[-1]["status"] == "not_processed"
