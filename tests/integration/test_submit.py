"""``cutout submit``: a real `cutout api` (gunicorn) and a real `cutout worker`, the
command run as a subprocess, exactly as a user runs it.

Results are compared with what the API serves for the same job (pixels equal). Batches
are counted in the API's Redis (``cutout:batch:<id>:counts`` keys) to prove that resuming
never creates a second batch.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from PIL import Image

from testkit.batch import photo
from tests.conftest import ROOT
from tests.integration.conftest import http, wait_for

STATE = ".cutout-submit.json"
FORMATS = ("PNG", "JPEG", "WEBP")
SUFFIXES = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def make_images(folder: Path, count: int, size: tuple[int, int] = (96, 72)) -> list[str]:
    """``count`` small product-like photos in mixed formats; their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        fmt = FORMATS[i % len(FORMATS)]
        name = f"item-{i:03d}.{SUFFIXES[fmt]}"
        (folder / name).write_bytes(photo(size, seed=i, fmt=fmt))
        names.append(name)
    return names


def command(src: Path, out: Path, api: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cutout",
        "submit",
        str(src),
        "--out",
        str(out),
        "--api",
        api,
        "--model",
        "u2netp",
        *extra,
    ]


def run_submit(
    src: Path, out: Path, api: str, *extra: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(src, out, api, *extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CUTOUT_API_KEY", None)
    env.pop("CUTOUT_API_URL", None)
    return env


def read_report(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "file",
        "job_id",
        "status",
        "error_code",
        "error_message",
        "output_file",
        "score",
        "review",
        "flags",
    ]
    return {row["file"]: row for row in rows}


def read_state(out: Path) -> dict[str, Any]:
    return json.loads((out / STATE).read_text())  # type: ignore[no-any-return]


def get_json(url: str) -> dict[str, Any]:
    status, _, body = http("GET", url)
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def batch_count(rdb: redis.Redis) -> int:
    return sum(1 for _ in rdb.scan_iter("cutout:batch:bat_*:counts", count=1000))


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img.convert("RGBA"))


def assert_results_match_api(api: str, out: Path, names: list[str], extension: str) -> None:
    """Every input has its output, named like cutout remove's, equal to the API's result."""
    report = read_report(out)
    assert sorted(report) == sorted(names)
    for name in names:
        row = report[name]
        expected_name = f"{Path(name).stem}.{extension}"
        assert row["status"] == "succeeded", row
        assert row["output_file"] == expected_name
        assert row["error_code"] == ""
        status, _, served = http("GET", f"{api}/v1/jobs/{row['job_id']}/result")
        assert status == 200
        local = (out / expected_name).read_bytes()
        assert np.array_equal(pixels(local), pixels(served)), name
        job = get_json(f"{api}/v1/jobs/{row['job_id']}")
        assert job["metadata"] == {"file": name}


@pytest.fixture
def rdb(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_submit_a_folder_then_rerun_changes_nothing(api_server, worker, rdb, tmp_path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    names = make_images(src, 20)
    (src / "notes.txt").write_text("not an image extension: not listed")
    before = batch_count(rdb)

    done = run_submit(src, out, api_server.url)

    assert done.returncode == 0, done.stderr
    assert "20/20" in done.stderr  # the progress line (plain, since stderr is a pipe)
    assert "img/s" in done.stderr
    assert_results_match_api(api_server.url, out, names, "png")
    assert not (out / "notes.png").exists()
    state = read_state(out)
    assert len(state["batches"]) == 1
    batch = get_json(f"{api_server.url}/v1/batches/{state['batches'][0]['id']}")
    assert batch["counts"]["total"] == 20
    assert batch["counts"]["succeeded"] == 20
    assert batch_count(rdb) == before + 1
    # every item's job is the item the state says it is
    jobs = get_json(f"{api_server.url}/v1/batches/{batch['id']}/jobs?limit=100")["items"]
    for job in jobs:
        assert state["batches"][0]["files"][job["item_index"]] == job["metadata"]["file"]

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    again = run_submit(src, out, api_server.url)

    assert again.returncode == 0, again.stderr
    assert "resuming: 20 of 20" in again.stderr
    assert batch_count(rdb) == before + 1
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == mtimes
    assert read_report(out) == read_report(out)  # rewritten, still complete
    assert len(read_report(out)) == 20


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_run_resumes_without_a_second_batch(
    api_server, worker, rdb, tmp_path, sig
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    names = make_images(src, 20, size=(320, 240))
    before = batch_count(rdb)
    proc = subprocess.Popen(
        command(src, out, api_server.url, "--concurrency", "2"),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # interrupt as soon as a few results are on disk
        wait_for(lambda: len(list(out.glob("item-*.png"))) >= 3, timeout=120, interval=0.02)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, stderr
        assert "run the same command again to resume" in stderr.lower()
    else:
        assert proc.returncode == -signal.SIGKILL
    state = read_state(out)
    assert len(state["batches"]) == 1
    assert state["batches"][0]["id"]
    # after SIGKILL the state may not have recorded the last downloads yet: what is on
    # disk counts (the resume recognises a complete file by its size)
    downloaded = {name for name in state["files"] if (out / f"{Path(name).stem}.png").exists()}
    assert 0 < len(downloaded) < 20, "the run was not interrupted half-way"
    kept = {name: (out / f"{Path(name).stem}.png").stat().st_mtime_ns for name in downloaded}
    assert not (out / "report.csv").exists()
    time.sleep(0.05)  # a rewritten file would have a later mtime
    # what a kill mid-download leaves (shared/atomicfile.py's temporary), and a file of
    # the user's that only looks alike: the resume removes the first, keeps the second
    (out / f".{Path(names[-1]).stem}.png.k1lled00.part").write_bytes(b"half a png")
    (out / ".notes.part").write_text("mine")

    resumed = run_submit(src, out, api_server.url)

    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert_results_match_api(api_server.url, out, names, "png")
    for name, mtime in kept.items():
        assert (out / f"{Path(name).stem}.png").stat().st_mtime_ns == mtime, name
    state = read_state(out)
    assert len(state["batches"]) == 1
    batch = get_json(f"{api_server.url}/v1/batches/{state['batches'][0]['id']}")
    assert batch["counts"]["total"] == 20
    assert batch_count(rdb) == before + 1
    assert [p.name for p in out.glob(".*.part")] == [".notes.part"]


def test_a_crash_before_the_batch_id_was_saved_gets_the_same_batch(
    api_server, worker, rdb, tmp_path
) -> None:
    """The POST was answered but the id never reached the state: the same key is sent."""
    src, out = tmp_path / "in", tmp_path / "out"
    names = make_images(src, 4)
    before = batch_count(rdb)
    first = run_submit(src, out, api_server.url)
    assert first.returncode == 0, first.stderr
    state = read_state(out)
    batch_id = state["batches"][0]["id"]
    # as the state was on disk just before the first answer came back
    state["batches"][0]["id"] = None
    for entry in state["files"].values():
        entry.update(job_id=None, status=None, error=None, bytes=None, downloaded=False)
    (out / STATE).write_text(json.dumps(state))
    for name in names:
        (out / f"{Path(name).stem}.png").unlink()

    again = run_submit(src, out, api_server.url)

    assert again.returncode == 0, again.stderr
    assert read_state(out)["batches"][0]["id"] == batch_id
    assert batch_count(rdb) == before + 1
    assert_results_match_api(api_server.url, out, names, "png")


def test_a_non_image_fails_with_its_code_and_retry_failed_resends_it(
    api_server, worker, tmp_path
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    names = make_images(src, 4)
    (src / "broken.png").write_bytes(b"this is not a picture at all\n" * 20)
    options = ("--format", "webp", "--bg-color", "#ffffff")

    done = run_submit(src, out, api_server.url, *options)

    assert done.returncode == 1, done.stderr
    assert "1 failed" in done.stderr
    assert "report.csv" in done.stderr
    report = read_report(out)
    assert report["broken.png"]["status"] == "failed"
    assert report["broken.png"]["error_code"] in ("invalid_image", "unsupported_format")
    assert report["broken.png"]["error_message"]
    assert report["broken.png"]["job_id"].startswith("job_")
    assert report["broken.png"]["output_file"] == ""
    assert not (out / "broken.webp").exists()
    for name in names:
        assert report[name]["status"] == "succeeded"
        assert (out / f"{Path(name).stem}.webp").is_file()
    job = get_json(f"{api_server.url}/v1/jobs/{report[names[0]]['job_id']}")
    assert job["options"]["format"] == "webp"
    assert job["options"]["bg_color"] == "#ffffffff"
    first_batch = read_state(out)["batches"][0]["id"]

    # a plain re-run re-submits nothing and still reports the failure
    again = run_submit(src, out, api_server.url, *options)
    assert again.returncode == 1
    assert len(read_state(out)["batches"]) == 1

    (src / "broken.png").write_bytes(photo(seed=99))
    retried = run_submit(src, out, api_server.url, "--retry-failed", *options)

    assert retried.returncode == 0, retried.stderr
    assert_results_match_api(api_server.url, out, [*names, "broken.png"], "webp")
    batches = read_state(out)["batches"]
    assert len(batches) == 2
    assert batches[0]["id"] == first_batch
    assert batches[1]["files"] == ["broken.png"]
    assert get_json(f"{api_server.url}/v1/batches/{batches[1]['id']}")["counts"]["total"] == 1


def test_an_expired_batch_is_named_and_retry_failed_submits_anew(
    api_server, worker, rdb, tmp_path
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    names = make_images(src, 3)
    first = run_submit(src, out, api_server.url)
    assert first.returncode == 0, first.stderr
    state = read_state(out)
    batch_id = state["batches"][0]["id"]
    # as if the run had stopped before downloading anything, and the batch then expired
    for entry in state["files"].values():
        entry.update(job_id=None, status=None, error=None, bytes=None, downloaded=False)
    (out / STATE).write_text(json.dumps(state))
    for name in names:
        (out / f"{Path(name).stem}.png").unlink()
    rdb.delete(f"cutout:batch:{batch_id}", f"cutout:batch:{batch_id}:counts")

    expired = run_submit(src, out, api_server.url)

    assert expired.returncode == 1
    assert f"batch {batch_id} is no longer on the server" in expired.stderr
    report = read_report(out)
    assert {row["status"] for row in report.values()} == {"expired"}
    assert {row["error_code"] for row in report.values()} == {"batch_expired"}

    retried = run_submit(src, out, api_server.url, "--retry-failed")
    assert retried.returncode == 0, retried.stderr
    assert_results_match_api(api_server.url, out, names, "png")


def test_recursive_folders_are_mirrored(api_server, worker, tmp_path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    make_images(src / "a", 1)
    make_images(src / "b" / "c", 1)
    (src / "top.png").write_bytes(photo(seed=5))
    done = run_submit(src, out, api_server.url, "--recursive")
    assert done.returncode == 0, done.stderr
    report = read_report(out)
    assert sorted(report) == ["a/item-000.png", "b/c/item-000.png", "top.png"]
    assert (out / "a" / "item-000.png").is_file()
    assert (out / "b" / "c" / "item-000.png").is_file()
    assert (out / "top.png").is_file()


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        ("empty", (), "no image files"),
        ("missing", (), "not a folder"),
        ("images", ("--format", "jpeg"), "bg_color"),
        ("images", ("--concurrency", "0"), "--concurrency"),
        ("clash", (), "would both write"),
        ("same", (), "another folder than DIR"),
    ],
)
def test_usage_errors_exit_2(tmp_path, setup, extra, message) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    if setup != "missing":
        src.mkdir()
    if setup in ("images", "clash"):
        make_images(src, 1)
    if setup == "clash":
        (src / "item-000.jpg").write_bytes(photo(fmt="JPEG"))
    if setup == "same":
        out = src
    done = run_submit(src, out, "http://127.0.0.1:9", *extra, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_other_options_on_resume_are_a_usage_error(api_server, worker, tmp_path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    make_images(src, 1)
    assert run_submit(src, out, api_server.url).returncode == 0
    other = run_submit(src, out, api_server.url, "--format", "webp")
    assert other.returncode == 2
    assert "other options" in other.stderr


def test_unreachable_api_exits_1_with_a_message(tmp_path) -> None:
    from cutout.stack import free_port

    src, out = tmp_path / "in", tmp_path / "out"
    make_images(src, 1)
    url = f"http://127.0.0.1:{free_port()}"
    done = run_submit(src, out, url, timeout=120)
    assert done.returncode == 1
    # said at once, in words, with what to do (it used to retry 25 s in silence and end
    # in a raw ConnectionRefusedError)
    assert f"nothing answers at {url}" in done.stderr
    assert "cutout up" in done.stderr
    assert "ConnectionRefusedError" not in done.stderr
    assert "Traceback" not in done.stderr


def test_uploads_of_an_interrupted_run_are_not_sent_again(api_server, worker, tmp_path) -> None:
    """Stopped after the uploads, before the batch: the next run uses the same uploads."""
    src, out = tmp_path / "in", tmp_path / "out"
    names = make_images(src, 3)
    first = run_submit(src, out, api_server.url)
    assert first.returncode == 0, first.stderr
    state = read_state(out)
    keys = {name: entry["upload_key"] for name, entry in state["files"].items()}
    state["batches"] = []
    for entry in state["files"].values():
        entry.update(batch=None, job_id=None, status=None, error=None, bytes=None)
        entry.update(downloaded=False)
    (out / STATE).write_text(json.dumps(state))

    again = run_submit(src, out, api_server.url)

    assert again.returncode == 0, again.stderr
    assert "cutout submit: upload" not in again.stderr
    state = read_state(out)
    assert {name: entry["upload_key"] for name, entry in state["files"].items()} == keys
    assert len(state["batches"]) == 1
    assert_results_match_api(api_server.url, out, names, "png")
