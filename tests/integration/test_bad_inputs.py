"""The bad-input corpus (tests/corpus/make.py) through the real service and `cutout remove`.

The API runs in-process (Flask test client) on the session's real Redis and SeaweedFS; a
real `cutout worker` subprocess of this module's own (``module_worker``, u2netp)
processes what the API accepts. For every case: the request gets its stated answer (202
or problem+json with the stated code); every accepted job ends ``succeeded`` or
``failed`` with the stated code, none stays queued or processing; afterwards the worker
process is alive, logged no crash, and still processes a normal photo.

The outcome table is written to ``test-artifacts/bad_inputs.json``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from api.app import create_app
from shared.contract.settings import load_settings
from tests.conftest import ROOT
from tests.corpus.make import BY_NAME, CASES, MAX_PIXELS, MAX_SIDE, Case, normal_image, write
from tests.integration.conftest import WorkerProcess, wait_for

TERMINAL = ("succeeded", "failed", "canceled")
# upright sizes where they differ from the stored ones
EXPECTED_SIZE = {"exif_rotated_6": (48, 80)}


@pytest.fixture(scope="module")
def app(
    module_db: str, s3_endpoint: str, s3_credentials: dict[str, str], module_worker: WorkerProcess
) -> Flask:
    settings = load_settings(
        {
            "CUTOUT_REDIS_URL": module_db,
            "CUTOUT_S3_ENDPOINT_URL": s3_endpoint,
            "CUTOUT_S3_BUCKET": "cutout-test",
        },
        max_pixels=MAX_PIXELS,
        max_side=MAX_SIDE,
        # polling every job is many requests: the rate limit has its own tests
        rate_limit=100_000.0,
        rate_burst=1_000_000,
    )
    return create_app(settings, {"TESTING": True})


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def outcomes(artifacts: Path) -> Iterator[dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, Any]] = {}
    yield table
    (artifacts / "bad_inputs.json").write_text(json.dumps(table, indent=1, sort_keys=True))


def post_case(client: FlaskClient, case: Case, data: bytes) -> Any:
    form = {"image": (io.BytesIO(data), case.filename, case.content_type), "model": "u2netp"}
    return client.post("/v1/jobs", data=form, content_type="multipart/form-data")


def wait_terminal(client: FlaskClient, job_ids: dict[str, str], timeout: float) -> dict:  # type: ignore[type-arg]
    """Poll every job through the API until all are terminal; name → job object."""
    done: dict[str, dict[str, Any]] = {}

    def all_done() -> bool:
        for name, job_id in job_ids.items():
            if name in done:
                continue
            response = client.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.get_data(as_text=True)
            job = response.get_json()
            if job["status"] in TERMINAL:
                done[name] = job
        return len(done) == len(job_ids)

    try:
        wait_for(all_done, timeout=timeout, interval=0.5)
    except AssertionError:
        stuck = {
            n: client.get(f"/v1/jobs/{i}").get_json()["status"]
            for n, i in job_ids.items()
            if n not in done
        }
        raise AssertionError(f"jobs not finished in {timeout}s: {stuck}") from None
    return done


def assert_healthy(client: FlaskClient, worker: WorkerProcess) -> None:
    """The service still answers, the worker lives, and a normal photo still works."""
    assert client.get("/readyz").status_code == 200
    assert worker.proc.poll() is None, worker.tail()
    response = post_case(client, BY_NAME["bmp"], normal_image())
    assert response.status_code == 202
    job = wait_terminal(client, {"normal": response.get_json()["id"]}, timeout=120)["normal"]
    assert job["status"] == "succeeded", job
    log = worker.log_path.read_text(errors="replace")
    for sign in ("Traceback", "WorkerLostError", "processing failed unexpectedly", "SIGKILL"):
        assert sign not in log, worker.tail(80)


def test_corpus_through_api_and_worker(
    client: FlaskClient,
    module_worker: WorkerProcess,
    outcomes: dict[str, dict[str, Any]],
) -> None:
    accepted: dict[str, str] = {}
    wrong: list[str] = []
    for case in CASES:
        response = post_case(client, case, case.build())
        outcome: dict[str, Any] = {"http": response.status_code, "expected": case.code}
        outcomes[case.name] = outcome
        if response.status_code >= 500:
            wrong.append(f"{case.name}: {response.status_code} {response.get_data(as_text=True)}")
            continue
        if response.status_code == 202:
            accepted[case.name] = response.get_json()["id"]
        else:
            assert response.mimetype == "application/problem+json", case.name
            body = response.get_json(force=True)
            assert {"type", "title", "status", "detail", "code"} <= set(body), body
            outcome["code"] = body["code"]
        if response.status_code != case.http_status or outcome.get("code") not in (
            None,
            case.code,
        ):
            wrong.append(f"{case.name}: answered {response.status_code} {outcome.get('code')}")
    jobs = wait_terminal(client, accepted, timeout=600)
    for name, job in jobs.items():
        case = BY_NAME[name]
        code = (job.get("error") or {}).get("code")
        outcomes[name].update(status=job["status"], code=code)
        if case.code is None:
            if job["status"] != "succeeded":
                wrong.append(f"{name}: {job['status']} {job.get('error')}")
                continue
            result = client.get(f"/v1/jobs/{job['id']}/result")
            assert result.status_code == 200
            image = Image.open(io.BytesIO(result.data))
            assert image.format == "PNG"
            assert image.mode == "RGBA"
            expected = EXPECTED_SIZE.get(name) or Image.open(io.BytesIO(case.build())).size
            if image.size != expected:
                wrong.append(f"{name}: result {image.size}, expected {expected}")
        elif job["status"] != "failed" or code != case.code:
            wrong.append(f"{name}: {job['status']} {code}, expected failed {case.code}")
    assert not wrong, "\n".join(wrong)
    assert_healthy(client, module_worker)


def test_refused_cases_fail_the_same_way_when_uploaded_directly(
    client: FlaskClient, module_worker: WorkerProcess
) -> None:
    """Direct uploads skip the API's look at the bytes: the worker judges them alike."""
    import urllib.request

    cases = [c for c in CASES if c.code is not None and c.stage == "api"]
    # an empty file cannot be uploaded at all: the signed length is at least 1
    cases = [c for c in cases if c.build()]
    slots = client.post("/v1/uploads", json={"sizes": [len(c.build()) for c in cases]}).get_json()
    assert len(slots) == len(cases)
    jobs: dict[str, str] = {}
    for case, slot in zip(cases, slots, strict=True):
        request = urllib.request.Request(
            slot["url"], data=case.build(), method="PUT", headers=slot.get("headers") or {}
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        created = client.post(
            "/v1/jobs", json={"upload_key": slot["upload_key"], "options": {"model": "u2netp"}}
        )
        assert created.status_code == 202, (case.name, created.get_data(as_text=True))
        jobs[case.name] = created.get_json()["id"]
    finished = wait_terminal(client, jobs, timeout=300)
    wrong = [
        f"{name}: {job['status']} {job.get('error')}, expected {BY_NAME[name].code}"
        for name, job in finished.items()
        if job["status"] != "failed" or job["error"]["code"] != BY_NAME[name].code
    ]
    assert not wrong, "\n".join(wrong)
    assert_healthy(client, module_worker)


def test_cutout_remove_on_the_corpus(
    corpus_dir: dict[str, Path], tmp_path: Path, service_env: dict[str, str]
) -> None:
    """Every case in one `cutout remove` run: exit 3, each unusable file named with its
    reason, every usable one written, no traceback."""
    out = tmp_path / "out"
    paths = [str(corpus_dir[case.name]) for case in CASES]
    done = subprocess.run(
        [sys.executable, "-m", "cutout", "remove", *paths, str(out), "--model", "u2netp", "-q"],
        env=dict(service_env, CUTOUT_ORT_THREADS="1"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 3, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    for case in CASES:
        path = corpus_dir[case.name]
        written = out / f"{path.stem}.png"
        mentions = [line for line in lines if str(path) in line]
        if case.code is None:
            assert written.is_file(), (case.name, mentions)
            assert not mentions, mentions
        else:
            assert not written.exists(), case.name
            assert len(mentions) == 1, (case.name, mentions)
            assert f"({case.code})" in mentions[0], mentions[0]


def test_cutout_remove_one_unusable_file(
    corpus_dir: dict[str, Path], tmp_path: Path, service_env: dict[str, str]
) -> None:
    for name in ("svg", "png_declares_100000x100000", "truncated_png_half"):
        path = corpus_dir[name]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cutout",
                "remove",
                str(path),
                str(tmp_path / "o.png"),
                "--model",
                "u2netp",
            ],
            env=service_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 3, (name, done.stderr)
        assert str(path) in done.stderr
        assert BY_NAME[name].code in done.stderr  # type: ignore[operator]
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "o.png").exists()
