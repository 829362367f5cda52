"""``cutout remove`` with the catalogue options (issue 16): real model, real files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from tests.integration.test_remove_cli import opened, photo, run, weights  # noqa: F401


def test_zip_with_shadow_scale_and_position(weights: Path, photo: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out.zip"
    assert run(str(photo), str(out), "--shadow", "--scale", "50%", "--position", "0% 0%") == 0
    with zipfile.ZipFile(out) as archive:
        alpha = np.asarray(Image.open(io.BytesIO(archive.read("alpha.png"))))
        color = Image.open(io.BytesIO(archive.read("color.jpg")))
    assert color.format == "JPEG"
    assert alpha.shape == (120, 160)
    # the object (80x80 box around 80,60) scaled to half the canvas' height, at the top left
    assert alpha[25, 25] > 200
    assert alpha[110, 150] < 30
    # below the object its shadow: partly transparent
    rows = np.flatnonzero(alpha[:, 20] > 200)
    below = alpha[rows[-1] + 3, 20]
    assert 0 < below < 200


def test_background_upload_key_needs_a_server(weights: Path, photo: Path, tmp_path: Path) -> None:  # noqa: F811
    assert run(str(photo), str(tmp_path / "o.png"), "--bg-upload-key", "uploads/x/y") == 2


def test_bad_catalogue_value_is_a_usage_error(weights: Path, photo: Path, tmp_path: Path) -> None:  # noqa: F811
    assert run(str(photo), str(tmp_path / "o.png"), "--scale", "300%") == 2
