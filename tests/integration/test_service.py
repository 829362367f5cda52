"""The asynchronous service end to end: a real `cutout api` (gunicorn) and a real
`cutout worker`, on real Redis and SeaweedFS, driven over HTTP as a client would."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from tests.conftest import ROOT
from tests.integration.conftest import http, multipart
from tests.integration.test_worker import photo_bytes


def submit(api_url: str, data: bytes, fields: dict[str, str], name: str = "photo.jpg") -> dict:
    body, ctype = multipart(fields, {"image": (name, data, "image/jpeg")})
    status, headers, raw = http("POST", f"{api_url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 202, raw
    job = json.loads(raw)
    assert headers["Location"] == f"/v1/jobs/{job['id']}"
    return job


def poll(api_url: str, job_id: str, timeout: float = 180) -> tuple[dict, list[str]]:
    """Poll until finished; returns the final job and the distinct statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, raw = http("GET", f"{api_url}/v1/jobs/{job_id}")
        assert status == 200, raw
        job = json.loads(raw)
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish; statuses seen: {seen}")


def test_http_job_matches_cutout_remove(api_server, worker, tmp_path, service_env) -> None:
    data = photo_bytes((1600, 1200))
    job = submit(api_server.url, data, {"model": "u2net", "bg_color": "#ffffff80"})
    assert job["status"] == "queued"
    assert job["options"]["model"] == "u2net"
    finished, seen = poll(api_server.url, job["id"])
    assert finished["status"] == "succeeded", finished
    assert seen[-2:] == ["processing", "succeeded"]
    assert seen[0] in ("queued", "processing")
    assert finished["result"]["url"] == f"/v1/jobs/{job['id']}/result"
    assert "key" not in finished["result"]

    status, headers, png = http("GET", api_server.url + finished["result"]["url"])
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert len(png) == finished["result"]["bytes"]

    # the same image and options through the local command give the same pixels
    source, out = tmp_path / "photo.jpg", tmp_path / "local.png"
    source.write_bytes(data)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cutout",
            "remove",
            str(source),
            str(out),
            "--model",
            "u2net",
            "--bg-color",
            "#ffffff80",
        ],
        check=True,
        cwd=ROOT,
        env=service_env,
        timeout=300,
    )
    ours = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(int)
    local = np.asarray(Image.open(out).convert("RGBA")).astype(int)
    assert ours.shape == local.shape == (1200, 1600, 4)
    assert np.abs(ours - local).max() == 0


def test_result_before_finish_is_409_and_unknown_is_404(api_server) -> None:
    status, headers, raw = http("GET", f"{api_server.url}/v1/jobs/job_0000000000000000000000000a")
    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(raw)["code"] == "not_found"
    status, _, raw = http("GET", f"{api_server.url}/v1/jobs/nonsense/result")
    assert status == 404
    assert json.loads(raw)["code"] == "not_found"


def test_api_remove_answers_png(api_server, worker) -> None:
    data = photo_bytes()
    body, ctype = multipart(
        {"model": "u2netp", "om": "true"}, {"file": ("p.jpg", data, "image/jpeg")}
    )
    status, headers, raw = http(
        "POST", f"{api_server.url}/api/remove", body, {"Content-Type": ctype}
    )
    assert status == 200, raw[:500]
    assert headers["Content-Type"] == "image/png"
    mask = Image.open(io.BytesIO(raw))
    assert mask.mode == "L"
    assert mask.size == (480, 360)
    pixels = np.asarray(mask)
    # the red disc is the subject: its centre is foreground, the corners background
    assert pixels[180, 240] > 200
    assert pixels[5, 5] < 50


def test_non_image_is_refused_with_its_code(api_server) -> None:
    body, ctype = multipart({}, {"image": ("notes.jpg", b"just some text\n" * 20, "image/jpeg")})
    status, headers, raw = http("POST", f"{api_server.url}/v1/jobs", body, {"Content-Type": ctype})
    assert status == 415
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(raw)
    assert problem["code"] == "unsupported_format"
    assert problem["status"] == 415
