"""Progress of the long local commands (issue 29, item 12): ``cutout remove`` on several
inputs and ``cutout eval`` count their work on stderr, whether stderr is a terminal (a
tqdm bar) or a pipe or log file (a plain line every few seconds and at the end), are
silent with ``-q``, and never write progress into stdout (the image of ``cutout remove -
-``, the table of ``cutout eval``). The real command in a subprocess, u2netp on tiny
pictures.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.integration.test_remove_cli import subject_photo


@pytest.fixture(scope="module")
def weights(model_home: Path) -> Path:
    from worker.engine.models import MODEL_SPECS, verify

    spec = MODEL_SPECS["u2netp"]
    problem = verify(spec, model_home / spec.filename)
    if problem:
        pytest.skip(f"u2netp weights not in {model_home} ({problem}); run `cutout models fetch`")
    return model_home


@pytest.fixture
def pictures(tmp_path: Path) -> list[Path]:
    """Two small photos of a dark object on a light backdrop in ``photos/``, their truth
    masks in ``masks/``."""
    paths = []
    (tmp_path / "photos").mkdir()
    (tmp_path / "masks").mkdir()
    for name, (width, height) in {"mug": (80, 60), "jar": (64, 64)}.items():
        photo = subject_photo(width, height)
        photo.save(tmp_path / "photos" / f"{name}.png")
        truth = (np.asarray(photo)[..., 0] < 200).astype(np.uint8) * 255
        Image.fromarray(truth).save(tmp_path / "masks" / f"{name}.png")
        paths.append(tmp_path / "photos" / f"{name}.png")
    return paths


def cutout(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cutout", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=300,
        check=False,
        env={**os.environ, "CUTOUT_ORT_THREADS": "1"},
    )


def test_remove_on_several_inputs_counts_them_on_stderr(
    weights: Path, pictures: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = cutout("remove", "--model", "u2netp", *map(str, pictures), str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert "images 2/2" in done.stderr.decode()  # stderr is a pipe here: a plain line
    assert done.stdout == b""
    assert sorted(p.name for p in out.iterdir()) == ["jar.png", "mug.png"]

    quiet = cutout("remove", "-q", "--model", "u2netp", *map(str, pictures), str(tmp_path / "q"))
    assert quiet.returncode == 0, quiet.stderr.decode()
    assert quiet.stderr == b""
    assert len(list((tmp_path / "q").iterdir())) == 2


def test_remove_on_a_folder_draws_a_bar_on_a_terminal(
    weights: Path, pictures: list[Path], tmp_path: Path
) -> None:
    # stderr a terminal of 100 columns, stdout a pipe: the bar goes to the terminal alone
    folder_and_out = (str(pictures[0].parent), str(tmp_path / "out"))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    with subprocess.Popen(
        [sys.executable, "-m", "cutout", "remove", "--model", "u2netp", *folder_and_out],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=ROOT,
    ) as process:
        os.close(slave)
        terminal = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            terminal += chunk
        stdout = process.stdout.read() if process.stdout else b""
    os.close(master)
    assert process.returncode == 0, terminal.decode(errors="replace")
    assert b"2/2" in terminal
    assert b"100%" in terminal
    assert stdout == b""


def test_remove_stdin_to_stdout_keeps_stdout_the_image(weights: Path, pictures: list[Path]) -> None:
    done = cutout("remove", "--model", "u2netp", "-", "-", stdin=pictures[0].read_bytes())
    assert done.returncode == 0, done.stderr.decode()
    image = Image.open(io.BytesIO(done.stdout))
    image.load()
    assert (image.format, image.size) == ("PNG", (80, 60))
    assert b"1/1" not in done.stderr  # one image: no progress at all


def test_eval_counts_its_runs_on_stderr_and_keeps_stdout_the_table(
    weights: Path, pictures: list[Path], tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "image,mask,category\n" + "".join(f"photos/{p.name},masks/{p.name},x\n" for p in pictures)
    )
    done = cutout("eval", "--manifest", str(manifest), "--model", "u2netp")
    assert done.returncode == 0, done.stderr.decode()
    stderr = done.stderr.decode()
    assert "cutout eval: 2 image(s) x u2netp" in stderr
    assert "runs 2/2" in stderr
    assert done.stdout.decode().startswith("method")
    assert "2/2" not in done.stdout.decode()

    quiet = cutout("eval", "-q", "--manifest", str(manifest), "--model", "u2netp")
    assert quiet.returncode == 0, quiet.stderr.decode()
    assert quiet.stderr == b""
    assert quiet.stdout.startswith(b"method")
