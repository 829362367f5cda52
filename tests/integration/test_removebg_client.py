"""remove.bg's own npm client (``remove.bg`` 1.3.0, MIT) against a real Cutout.

tests/removebg_client/drive.js calls the library's three functions and two failing
calls; the only change to the library is its base URL (a user's whole migration). Needs
``node`` and the package installed by ``npm ci --prefix tests/removebg_client`` (CI does
this); without them the test is skipped with the reason.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.integration.test_removebg import KEY, files, keyed_api  # noqa: F401 - fixtures
from tests.integration.test_worker import photo_bytes

CLIENT = ROOT / "tests" / "removebg_client"


def node_client() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    if not (CLIENT / "node_modules" / "remove.bg" / "package.json").is_file():
        return None
    return node


def decode(result: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(result["base64img"])))


def test_the_npm_client_works_by_changing_the_base_url(
    keyed_api,  # noqa: F811 - the fixture
    files,  # noqa: F811
    worker,
    tmp_path: Path,
) -> None:
    node = node_client()
    if node is None:
        pytest.skip("node or tests/removebg_client/node_modules missing (npm ci --prefix ...)")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(photo_bytes())
    done = subprocess.run(
        [node, str(CLIENT / "drive.js"), keyed_api.url, KEY, str(photo), files("photo.jpg")],
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = json.loads(done.stdout)

    # removeBackgroundFromImageFile: multipart, size regular (0.25 MP), crop, type product
    file = out["file"]
    assert file["ok"], file
    image = decode(file["result"])
    assert image.format == "PNG"
    assert image.mode == "RGBA"
    assert str(image.width) == file["result"]["resultWidth"]
    assert str(image.height) == file["result"]["resultHeight"]
    assert abs(image.width - 240) <= 12  # cropped to the disc
    assert file["result"]["detectedType"] == "product"
    assert file["result"]["creditsCharged"] == "0"

    # removeBackgroundFromImageBase64: JSON, bg_color without '#', scale 50%
    b64 = out["base64"]
    assert b64["ok"], b64
    image = decode(b64["result"])
    assert image.format == "JPEG"  # format auto, opaque colour
    pixels = np.asarray(image.convert("RGB")).astype(int)
    assert np.abs(pixels[3, 3] - (0x81, 0xD4, 0xFA)).max() <= 6
    assert pixels[180, 240, 0] > 150  # the disc, scaled, still in the centre

    # removeBackgroundFromImageUrl: JSON with image_url, channels alpha
    url = out["url"]
    assert url["ok"], url
    mask = decode(url["result"])
    assert mask.mode == "L"
    assert np.asarray(mask)[180, 240] > 200

    # errors arrive as the library hands them on: remove.bg's errors array
    assert out["bad_size"]["ok"] is False
    assert out["bad_size"]["errors"][0]["code"] == "invalid_option"
    assert "size" in out["bad_size"]["errors"][0]["title"]
    assert out["bad_key"]["ok"] is False
    assert out["bad_key"]["errors"][0]["code"] == "unauthorized"
