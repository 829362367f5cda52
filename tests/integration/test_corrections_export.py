"""Corrections as training data (issue 27, item 4): ``GET /v1/corrections`` and
``cutout corrections export``.

Real parts: the module's own Redis database (the listing reads a tenant's whole index),
a real `cutout worker` (u2netp) that renders the corrections, real SeaweedFS, the API
in-process (Flask test client, every answer checked against /openapi.json) and, for the
command, a real `cutout api` process with API keys, the command run as a user runs it.
Inputs are 96x72 photos of a disc (testkit.batch.photo).

The corrected set: tenant a has three single jobs (metadata `sku`; the second corrected
twice) and a batch of two (one corrected); tenant b has one corrected job.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from testkit.batch import AUTH_A, AUTH_B, KEY_A, KEY_B, ImageServer, make_app, photo
from tests.conftest import ROOT
from tests.integration.conftest import ApiProcess, WorkerProcess, running_api, wait_for

SIZE = (96, 72)
SKUS = ("SKU-1", "SKU-2", "SKU-3")


def mask_png(left: int, right: int) -> bytes:
    """A corrected mask: columns ``left``..``right`` kept, the rest erased."""
    pixels = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    pixels[6:66, left:right] = 255
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB") if image.mode != "L" else image)


def job_of(client: FlaskClient, job_id: str, auth: dict[str, str]) -> dict[str, Any]:
    return client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()  # type: ignore[no-any-return]


def succeeded(client: FlaskClient, job_id: str, auth: dict[str, str]) -> None:
    def done() -> bool:
        return job_of(client, job_id, auth)["status"] in ("succeeded", "failed")

    wait_for(done, 180, 0.1)
    assert job_of(client, job_id, auth)["status"] == "succeeded"


def correct(client: FlaskClient, job_id: str, mask: bytes, auth: dict[str, str]) -> int:
    """PUT the mask and wait for its version; the version."""
    sent = client.put(f"/v1/jobs/{job_id}/mask", data=mask, content_type="image/png", headers=auth)
    assert sent.status_code == 202, sent.get_data(as_text=True)

    def done() -> dict[str, Any] | None:
        job = job_of(client, job_id, auth)
        return job if job["correction"]["status"] != "pending" else None

    job = wait_for(done, 120, 0.1)
    assert job["correction"]["status"] == "succeeded", job
    return int(job["result"]["version"])


def submit(client: FlaskClient, seed: int, auth: dict[str, str], sku: str) -> str:
    body = {
        "image": (io.BytesIO(photo(SIZE, seed)), "disc.png"),
        "model": "u2netp",
        "metadata": f'{{"sku": "{sku}"}}',
    }
    answer = client.post("/v1/jobs", data=body, content_type="multipart/form-data", headers=auth)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    job_id: str = answer.get_json()["id"]
    succeeded(client, job_id, auth)
    return job_id


@pytest.fixture(scope="module")
def client(module_db: str, s3_endpoint: str, s3_credentials: dict[str, str]) -> FlaskClient:
    return make_app(module_db, s3_endpoint).test_client()


@pytest.fixture(scope="module")
def corrected(
    client: FlaskClient, module_worker: WorkerProcess, images: ImageServer
) -> dict[str, Any]:
    """The corrected set of the module doc: ids, masks sent (newest), batch id, versions."""
    started = datetime.now(UTC)
    singles = [submit(client, seed, AUTH_A, sku) for seed, sku in zip((1, 2, 3), SKUS, strict=True)]
    items = [
        {"image_url": images.add(f"/export/b{i}.png", photo(SIZE, 10 + i)), "metadata": {"i": i}}
        for i in (0, 1)
    ]
    answer = client.post(
        "/v1/batches", json={"items": items, "options": {"model": "u2netp"}}, headers=AUTH_A
    )
    assert answer.status_code == 202, answer.get_data(as_text=True)
    batch_id = answer.get_json()["id"]
    batch_jobs = client.get(f"/v1/batches/{batch_id}/jobs", headers=AUTH_A).get_json()["items"]
    for job in batch_jobs:
        succeeded(client, job["id"], AUTH_A)
    other = submit(client, 4, AUTH_B, "B-1")
    masks = {job_id: mask_png(10 + 8 * n, 70) for n, job_id in enumerate(singles)}
    masks[batch_jobs[0]["id"]] = mask_png(30, 90)
    masks[other] = mask_png(5, 50)
    versions = {}
    for job_id, mask in masks.items():
        versions[job_id] = correct(client, job_id, mask, AUTH_B if job_id == other else AUTH_A)
    after_first = datetime.now(UTC)
    time.sleep(0.01)
    masks[singles[1]] = mask_png(40, 60)  # the second single, corrected again: newest last
    versions[singles[1]] = correct(client, singles[1], masks[singles[1]], AUTH_A)
    return {
        "singles": singles,
        "batch_id": batch_id,
        "batch_fixed": batch_jobs[0]["id"],
        "batch_kept": batch_jobs[1]["id"],
        "other": other,
        "masks": masks,
        "versions": versions,
        "started": started,
        "after_first": after_first,
    }


def listing(client: FlaskClient, auth: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    """Every page of GET /v1/corrections, items in order."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        args = {**query, **({"cursor": cursor} if cursor else {})}
        answer = client.get("/v1/corrections", query_string=args, headers=auth)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the listing never ended")


def test_each_tenant_lists_its_own_corrected_jobs_oldest_first(
    client: FlaskClient, corrected: dict[str, Any]
) -> None:
    items = listing(client, AUTH_A)
    ids = [item["job_id"] for item in items]
    a_jobs = [*corrected["singles"], corrected["batch_fixed"]]
    # each corrected job once; the one corrected twice last (its newest correction)
    assert sorted(ids) == sorted(a_jobs)
    assert ids[-1] == corrected["singles"][1]
    assert [item["corrected_at"] for item in items] == sorted(i["corrected_at"] for i in items)
    first = next(item for item in items if item["job_id"] == corrected["singles"][0])
    assert (first["metadata"], first["batch_id"], first["version"]) == ({"sku": "SKU-1"}, None, 2)
    assert first["options"]["model"] == "u2netp"
    assert items[-1]["version"] == 3
    assert [item["job_id"] for item in listing(client, AUTH_B)] == [corrected["other"]]
    # the URLs: with the key for its tenant only, and signed ones that need none
    job_id = corrected["singles"][1]
    mask = client.get(items[-1]["mask_url"], headers=AUTH_A)
    assert mask.status_code == 200
    assert np.array_equal(pixels(mask.get_data()), pixels(corrected["masks"][job_id]))
    assert client.get(items[-1]["mask_url"], headers=AUTH_B).status_code == 404
    assert client.get(items[-1]["input_url"], headers=AUTH_B).status_code == 404
    assert np.array_equal(
        pixels(client.get(items[-1]["input_url"], headers=AUTH_A).get_data()),
        pixels(photo(SIZE, 2)),
    )
    signed = items[-1]["mask_signed_url"]
    import urllib.request

    with urllib.request.urlopen(signed, timeout=30) as response:
        assert np.array_equal(pixels(response.read()), pixels(corrected["masks"][job_id]))


def test_pages_of_one_cover_every_correction_once(
    client: FlaskClient, corrected: dict[str, Any]
) -> None:
    whole = [item["job_id"] for item in listing(client, AUTH_A)]
    assert [item["job_id"] for item in listing(client, AUTH_A, limit=1)] == whole
    assert [item["job_id"] for item in listing(client, AUTH_A, limit=2)] == whole


def test_a_correction_made_while_paging_comes_after_the_pages_read(
    client: FlaskClient, corrected: dict[str, Any]
) -> None:
    only = client.get("/v1/corrections?limit=1", headers=AUTH_B).get_json()
    assert [item["job_id"] for item in only["items"]] == [corrected["other"]]
    assert only["next_cursor"] is None  # a full last page says it is the last
    # a correction rendered after the first page was read: the cursor goes on to it
    cursor = client.get("/v1/corrections?limit=1", headers=AUTH_A).get_json()["next_cursor"]
    before = listing(client, AUTH_A, limit=1)
    job_id = corrected["singles"][0]
    version = correct(client, job_id, corrected["masks"][job_id], AUTH_A)
    rest = listing(client, AUTH_A, limit=1, cursor=cursor)
    ids = [item["job_id"] for item in rest]
    # nothing from before is lost, and the job corrected again comes again, with its version
    assert ids[-1] == job_id
    assert rest[-1]["version"] == version
    assert before[0]["job_id"] == job_id
    assert [i["job_id"] for i in before[1:]] == ids[:-1]


def test_since_and_batch_id_filter(client: FlaskClient, corrected: dict[str, Any]) -> None:
    since = corrected["after_first"].isoformat().replace("+00:00", "Z")
    later = [item["job_id"] for item in listing(client, AUTH_A, since=since)]
    assert corrected["singles"][1] in later
    assert corrected["singles"][2] not in later
    assert corrected["batch_fixed"] not in later
    everything = listing(client, AUTH_A, since=corrected["started"].isoformat())
    assert len(everything) == 4
    # `since` takes an item's own corrected_at back: that item and the later ones
    third = everything[2]
    again = listing(client, AUTH_A, since=third["corrected_at"])
    assert [i["job_id"] for i in again] == [i["job_id"] for i in everything[2:]]
    batch = listing(client, AUTH_A, batch_id=corrected["batch_id"], limit=1)
    assert [item["job_id"] for item in batch] == [corrected["batch_fixed"]]
    assert listing(client, AUTH_B, batch_id=corrected["batch_id"]) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("limit=1001", "limit"),
        ("since=yesterday", "since"),
        ("since=2026-12-01", "since"),
        ("since=2026-12-01T00:00:00", "since"),
        ("batch_id=job_x", "batch_id"),
        ("cursor=nonsense", "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b"cnan|job_x").decode(), "cursor"),
    ],
)
def test_bad_parameters_are_named(client: FlaskClient, query: str, field: str) -> None:
    answer = client.get(f"/v1/corrections?{query}", headers=AUTH_A)
    assert answer.status_code == 400
    assert (answer.get_json()["code"], answer.get_json()["field"]) == ("invalid_request", field)


def test_entries_of_expired_jobs_are_skipped_and_pruned(
    client: FlaskClient, corrected: dict[str, Any], module_db: str
) -> None:
    import redis

    from shared.stores.corrections import corrected_key

    r = redis.Redis.from_url(module_db)
    assert 0 < r.ttl(corrected_key("a")) <= 7 * 86400
    r.zadd(corrected_key("a"), {"job_gone00000000000000000000": time.time()})
    ids = [item["job_id"] for item in listing(client, AUTH_A)]
    assert "job_gone00000000000000000000" not in ids
    assert len(ids) == 4
    assert r.zscore(corrected_key("a"), "job_gone00000000000000000000") is None


def test_a_correction_lands_after_the_newest_entry_whatever_the_clocks(
    client: FlaskClient, corrected: dict[str, Any], module_db: str
) -> None:
    """Entries are stamped by Redis, each after the newest: an entry stamped ahead (a
    clock that ran fast) never puts a later correction behind a reader's cursor."""
    import redis

    from shared.stores.corrections import corrected_key

    r = redis.Redis.from_url(module_db)
    cursor = listing(client, AUTH_A)[-1]  # the newest listed before
    ahead = time.time() + 1000  # (a listing would prune it: it has no job)
    r.zadd(corrected_key("a"), {"job_ahead0000000000000000000": ahead})
    job_id = corrected["singles"][2]
    correct(client, job_id, corrected["masks"][job_id], AUTH_A)
    score = r.zscore(corrected_key("a"), job_id)
    assert score is not None
    assert score > ahead
    newest = listing(client, AUTH_A, since=cursor["corrected_at"])
    assert newest[-1]["job_id"] == job_id


# -- cutout corrections export ------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_api(
    service_env: dict[str, str], module_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    env = dict(service_env, CUTOUT_REDIS_URL=module_db, CUTOUT_API_KEYS=f"a:{KEY_A},b:{KEY_B}")
    with running_api(env, tmp_path_factory.mktemp("api") / "api.log") as api:
        yield api


def export(
    out: Path, api: str, *extra: str, key: str | None = KEY_A
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOUT_API")}
    if key:
        env["CUTOUT_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "cutout", "corrections", "export", str(out), "--api", api, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_export_writes_the_inputs_newest_masks_and_a_manifest_tune_reads(
    keyed_api: ApiProcess, corrected: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "set"
    done = export(out, keyed_api.url)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    by_job = {row["job_id"]: row for row in rows}
    assert sorted(by_job) == sorted([*corrected["singles"], corrected["batch_fixed"]])
    assert len(rows) == 4  # the job corrected twice: once, its newest mask
    seeds = dict(zip(corrected["singles"], (1, 2, 3), strict=True))
    seeds[corrected["batch_fixed"]] = 10
    for job_id, row in by_job.items():
        assert np.array_equal(
            pixels((out / row["mask"]).read_bytes()), pixels(corrected["masks"][job_id])
        )
        assert np.array_equal(
            pixels((out / row["image"]).read_bytes()), pixels(photo(SIZE, seeds[job_id]))
        )
        assert row["category"] == "corrections"
    assert by_job[corrected["singles"][1]]["version"] == "3"
    # cutout eval's reader and what cutout tune loads from it take it as it is
    from worker.eval.manifest import load_manifest
    from worker.tune.data import load_samples

    samples = load_samples(load_manifest(out / "manifest.csv"))
    assert len(samples) == 4
    assert samples[0].mask.size == SIZE
    # a re-run downloads nothing and changes nothing
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = export(out, keyed_api.url)
    assert again.returncode == 0, again.stderr
    assert "0 downloaded, 4 already there" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_an_exported_set_tunes_a_model_with_cutout_tune(
    keyed_api: ApiProcess, corrected: dict[str, Any], model_home: Path, tmp_path: Path
) -> None:
    """The loop's last step: the export's manifest, as it is, into `cutout tune` (tiny,
    as tests/integration/test_tune.py runs it), which writes a model."""
    pytest.importorskip("torch")
    from tests.integration.test_tune import tiny_tune

    out = tmp_path / "set"
    assert export(out, keyed_api.url).returncode == 0
    home = tmp_path / "models"
    home.mkdir()
    (home / "u2netp.onnx").symlink_to(model_home / "u2netp.onnx")
    done = tiny_tune(out / "manifest.csv", home, "shop-fixes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training on all 4 photos" in done.stderr
    made = list(home.rglob("shop-fixes*.onnx"))
    assert made, sorted(str(p) for p in home.rglob("*"))
    assert made[0].stat().st_size > 1_000_000


def test_export_of_a_batch_and_of_the_other_tenant(
    keyed_api: ApiProcess, corrected: dict[str, Any], tmp_path: Path
) -> None:
    done = export(tmp_path / "batch", keyed_api.url, "--batch", corrected["batch_id"], "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # -q: nothing on stderr
    rows = list(csv.DictReader((tmp_path / "batch" / "manifest.csv").open()))
    assert [row["job_id"] for row in rows] == [corrected["batch_fixed"]]
    done = export(tmp_path / "b", keyed_api.url, key=KEY_B)
    rows = list(csv.DictReader((tmp_path / "b" / "manifest.csv").open()))
    assert [row["job_id"] for row in rows] == [corrected["other"]]


def test_export_errors_are_clear(keyed_api: ApiProcess, tmp_path: Path) -> None:
    refused = export(tmp_path / "x", keyed_api.url, key="not-a-key")
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "--api-key or CUTOUT_API_KEY" in refused.stderr
    from cutout.stack import free_port

    nobody = export(tmp_path / "x", f"http://127.0.0.1:{free_port()}")
    assert nobody.returncode == 1
    assert "nothing answers" in nobody.stderr
    usage = export(tmp_path / "x", keyed_api.url, "--since", "yesterday")
    assert usage.returncode == 2
    assert "--since" in usage.stderr


def test_export_goes_on_after_an_interruption_and_takes_new_versions(
    keyed_api: ApiProcess, client: FlaskClient, corrected: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "set"
    assert export(out, keyed_api.url, "-q").returncode == 0
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    # as an interrupted run leaves it: the last item's input written, its mask and row not
    dropped = rows[-1]
    (out / dropped["mask"]).unlink()
    text = (out / "manifest.csv").read_text().splitlines(keepends=True)
    (out / "manifest.csv").write_text("".join(text[:-1]))
    # and a job corrected again since
    again = corrected["batch_fixed"]
    newer = mask_png(20, 50)
    version = correct(client, again, newer, AUTH_A)
    done = export(out, keyed_api.url)
    assert done.returncode == 0, done.stderr
    assert "2 downloaded, 2 already there" in done.stderr
    by_job = {row["job_id"]: row for row in csv.DictReader((out / "manifest.csv").open())}
    assert len(by_job) == 4
    assert by_job[again]["version"] == str(version)
    assert np.array_equal(pixels((out / by_job[again]["mask"]).read_bytes()), pixels(newer))
    assert (out / by_job[dropped["job_id"]]["mask"]).is_file()
    # a job whose input was deleted is left out of a new export, and named
    gone = corrected["singles"][2]
    assert client.delete(f"/v1/jobs/{gone}", headers=AUTH_A).status_code == 204
    fresh = export(tmp_path / "fresh", keyed_api.url)
    assert fresh.returncode == 0, fresh.stderr
    assert f"{gone}: its input or mask is no longer stored" in fresh.stderr
    rows = list(csv.DictReader((tmp_path / "fresh" / "manifest.csv").open()))
    assert sorted(row["job_id"] for row in rows) == sorted(set(by_job) - {gone})
