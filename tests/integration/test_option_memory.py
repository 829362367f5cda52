"""Every option at its maximum, in a fresh process, within the documented memory bound
(docs/security.md, "Memory per job"), and the limits that keep it there refused at submit.

Each case runs the real engine (u2netp) in its own child process
(tests/integration/memory_probe.py), which reports what the job added to the process's
peak RSS (``ru_maxrss``) over a warmed engine. The bound is the documented formula.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.integration.conftest import ApiProcess, http, multipart, wait_for
from tests.integration.memory_probe import photo

MB = 1 << 20
# the documented bound of what one job adds to a warmed worker child, in bytes
FIXED = 64 * MB  # allocator slack, encoder buffers, the model's output at 320×320
PER_INPUT_PIXEL = 32  # decode, mask, cutout and the encoded result (PNG 15-16, WebP 29-30)
PER_CANVAS_PIXEL = 24  # the canvas, its background and the encoded result (16-20)
# alpha matting solves its band a box at a time: one box's solve (its Laplacian,
# preconditioner and CG; at most 3.7 kB per pixel of a smaller picture), then its
# trimap, coarse alpha and RGBA result per pixel
MATTING_BOX = 600_000_000
MATTING_BOX_PER_PIXEL = 3700
PER_MATTING_PIXEL = 16
PER_BACKGROUND_PIXEL = 8  # a background image, decoded, then fitted to the output (~4)
REFINE = 80_000_000  # refine's coarse grid and one strip; its RGBA replaces the cutout's
REFINE_PER_SIDE = 7_680  # its row-narrowed copy of the photo, per row of the shorter side


def bound(input_px: int, options: dict[str, Any], background_px: int = 0) -> int:
    total = FIXED + PER_INPUT_PIXEL * input_px + PER_BACKGROUND_PIXEL * background_px
    if options.get("canvas"):
        width, height = (int(n) for n in options["canvas"].split("x"))
        total += PER_CANVAS_PIXEL * width * height
    if options.get("alpha_matting"):
        total += min(MATTING_BOX, MATTING_BOX_PER_PIXEL * input_px) + PER_MATTING_PIXEL * input_px
    if options.get("refine"):
        total += REFINE + REFINE_PER_SIDE * math.isqrt(input_px)
    return total


CASES: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {
    # canvas at its maximum under the default CUTOUT_MAX_PIXELS (49,999,041 pixels) on a
    # 1×1 input: 10000x10000 added 1.5-1.7 GB before it was refused
    "canvas-png": ((1, 1), {"canvas": "7071x7071", "bg_color": "#ffffff"}),
    "canvas-webp": ((1, 1), {"canvas": "7071x7071", "bg_color": "#ffffff", "format": "webp"}),
    "canvas-mask": ((1, 1), {"canvas": "7071x7071", "mask_only": True, "fill": 1.0}),
    # every other option together, at its largest value
    "the-rest": (
        (2000, 2000),
        {
            "post_process": True,
            "bg_color": "#10203040",
            "format": "jpeg",
            "crop": True,
            "margin": 10_000,
        },
    ),
    # a background image at the pixel limit behind a canvas at the limit, with a shadow
    "canvas-background": (
        (1, 1),
        {
            "canvas": "7071x7071",
            "bg_upload_key": "uploads/acme/upl_background",
            "shadow": True,
            "background": (7071, 7071),
        },
    ),
    # the catalogue options (issue 16) together, at their largest
    "catalogue": (
        (2000, 2000),
        {
            "shadow": True,
            "format": "zip",
            "scale": "100%",
            "position": "center",
            "crop": True,
            "crop_margin": "500px",
            "roi": "0% 0% 100% 100%",
        },
    ),
    # refine (u2net) on a 12 MP photo, with every option it combines with
    "refine": ((4000, 3000), {"refine": True}),
    "refine-all": (
        (4000, 3000),
        {"refine": True, "post_process": True, "crop": True, "bg_color": "#ffffff80"},
    ),
    # the largest erosion on a small image: scipy's erosion added ~760 MB at 100 and
    # ran out of memory at 255
    "erode-255": ((64, 64), {"alpha_matting": True, "alpha_matting_erode_size": 255}),
    # matting on a 12 MP photo (0.5 MP was its limit while pymatting solved the whole
    # picture at ~3 kB per pixel: ~36 GB here); and a 1000×1000 photo with an erosion
    # that leaves a band ~200 px wide: boxes cut in four, the coarse alpha at the cuts
    "matting-12mp": ((4000, 3000), {"alpha_matting": True}),
    "matting-wide-band": ((1000, 1000), {"alpha_matting": True, "alpha_matting_erode_size": 100}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_option_at_its_maximum_stays_within_the_bound(
    name: str, tmp_path: Path, model_home: Path
) -> None:
    size, values = CASES[name]
    weights = "u2net" if values.get("refine") else "u2netp"
    if not (model_home / f"{weights}.onnx").exists():
        pytest.skip(f"{weights} weights missing: run `cutout models fetch`")
    options = {k: v for k, v in values.items() if k not in ("max_matting_pixels", "background")}
    source = tmp_path / "input.png"
    source.write_bytes(photo(*size))
    case: dict[str, Any] = {"input": str(source), "options": {"model": "u2netp", **options}}
    background_px = 0
    if "background" in values:
        width, height = values["background"]
        background_px = width * height
        case["background"] = str(tmp_path / "background.jpg")
        Image.new("RGB", (width, height), (10, 200, 30)).save(case["background"], quality=80)
    if "max_matting_pixels" in values:
        case["max_matting_pixels"] = values["max_matting_pixels"]
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.memory_probe", json.dumps(case)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    added = report["added_kb"] * 1024
    limit = bound(size[0] * size[1], options, background_px)
    print(f"{name}: added {added / MB:.0f} MB of peak RSS, bound {limit / MB:.0f} MB, {report}")
    assert added <= limit, f"{name} added {added / MB:.0f} MB, over {limit / MB:.0f} MB"
    if options.get("canvas"):
        assert report["output"] == [7071, 7071]


def test_over_the_limits_is_refused_at_submit(api_server: ApiProcess) -> None:
    """A canvas over CUTOUT_MAX_PIXELS and alpha matting on an input over
    CUTOUT_MAX_MATTING_PIXELS answer 422 before a job exists, with a clear message."""
    status, _, raw = http(
        "POST",
        f"{api_server.url}/v1/jobs",
        json.dumps(
            {"image_url": "http://127.0.0.1:9/x.png", "options": {"canvas": "10000x10000"}}
        ).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 422, raw
    problem = json.loads(raw)
    assert problem["code"] == "invalid_option"
    assert problem["option"] == "canvas"
    assert "CUTOUT_MAX_PIXELS" in problem["detail"]

    body, ctype = multipart(
        {"canvas": "10000x10000"}, {"image": ("a.png", photo(4, 4), "image/png")}
    )
    status, _, raw = http("POST", f"{api_server.url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 422, raw
    assert json.loads(raw)["code"] == "invalid_option"

    # over the 16 MP of CUTOUT_MAX_MATTING_PIXELS (a one-colour PNG: small to send)
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 4000), (200, 30, 30)).save(buffer, "PNG")
    body, ctype = multipart(
        {"alpha_matting": "true"}, {"image": ("a.png", buffer.getvalue(), "image/png")}
    )
    status, _, raw = http("POST", f"{api_server.url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 422, raw
    problem = json.loads(raw)
    assert problem["code"] == "image_too_large"
    assert "CUTOUT_MAX_MATTING_PIXELS" in problem["detail"]

    # a batch item's own options are checked too
    status, _, raw = http(
        "POST",
        f"{api_server.url}/v1/batches",
        json.dumps(
            {
                "items": [
                    {"image_url": "http://127.0.0.1:9/x.png", "options": {"canvas": "9000x9000"}}
                ]
            }
        ).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 422, raw
    assert json.loads(raw)["code"] == "invalid_option"


def test_a_job_over_the_memory_bound_is_refused_at_submit(api_server: ApiProcess) -> None:
    """Each option within its own limit, together over CUTOUT_MAX_JOB_MEMORY: a 50 MP
    input on a 50 MP canvas answers 422 image_too_large before a job exists."""
    buffer = io.BytesIO()
    Image.new("RGB", (10_000, 5_000), (200, 30, 30)).save(buffer, "PNG")  # ~60 kB
    body, ctype = multipart(
        {"canvas": "7071x7071"}, {"image": ("big.png", buffer.getvalue(), "image/png")}
    )
    status, _, raw = http("POST", f"{api_server.url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 422, raw
    problem = json.loads(raw)
    assert problem["code"] == "image_too_large"
    assert "CUTOUT_MAX_JOB_MEMORY" in problem["detail"]


def test_refine_at_the_pixel_limit_is_accepted_at_submit(api_server: ApiProcess) -> None:
    """refine is counted as ~0.13 GB at 50 MP: a 50 MP upload with it is queued (202); what
    tips a job over CUTOUT_MAX_JOB_MEMORY names refine among its parts."""
    buffer = io.BytesIO()
    Image.new("RGB", (10_000, 5_000), (200, 30, 30)).save(buffer, "PNG")
    image = {"image": ("big.png", buffer.getvalue(), "image/png")}
    body, ctype = multipart({"refine": "true"}, image)
    status, _, raw = http("POST", f"{api_server.url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 202, raw
    body, ctype = multipart({"refine": "true", "canvas": "3000x2500"}, image)
    status, _, raw = http("POST", f"{api_server.url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 422, raw
    problem = json.loads(raw)
    assert problem["code"] == "image_too_large"
    assert "refine" in problem["detail"]


def test_a_1000x1000_photo_is_alpha_matted_through_the_worker(  # type: ignore[no-untyped-def]
    api_server: ApiProcess, worker, store, storage, model_home: Path
) -> None:
    """The standard marketplace size, which rembg mats, through the API and a real
    worker: it answered 422 image_too_large while CUTOUT_MAX_MATTING_PIXELS was 0.5 MP.
    The worker's cutout is the engine's alpha matting (not the plain cutout)."""
    from shared.contract.limits import JobLimits
    from shared.contract.options import parse_options
    from worker.engine import Engine

    data = photo(1000, 1000)
    options = {"model": "u2netp", "alpha_matting": "true"}
    body, ctype = multipart(options, {"image": ("photo.png", data, "image/png")})
    status, _, raw = http("POST", f"{api_server.url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 202, raw
    job_id = json.loads(raw)["id"]
    job = wait_for(
        lambda: (j := store.get_job(job_id)) and j.status in ("succeeded", "failed") and j,
        300,
    )
    assert job.status == "succeeded", job
    served = np.asarray(Image.open(io.BytesIO(storage.get(job.result["key"]))))
    assert served.shape == (1000, 1000, 4)
    assert served[500, 500, 3] == 255  # the subject
    assert served[5, 5, 3] == 0  # the background
    engine = Engine(model_home, threads=1)
    local = engine.process(
        data, parse_options(options), limits=JobLimits(max_matting_pixels=16_000_000)
    )
    assert np.abs(served.astype(int) - np.asarray(Image.open(io.BytesIO(local.data)))).max() <= 1
    plain = engine.process(data, parse_options({"model": "u2netp"}))
    assert not np.array_equal(served, np.asarray(Image.open(io.BytesIO(plain.data))))
