"""Batches: the API in-process (Flask test client) on real Redis and SeaweedFS, with a real
`cutout worker` subprocess where items must be processed.

Two Redis databases of this module's own: ``module_db``, consumed by ``module_worker``,
and ``api_db``, which no worker reads, for what the API alone promises (validation, tenancy,
listing) and for driving the enqueue task by hand.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from testkit.batch import (
    AUTH_A,
    AUTH_B,
    ImageServer,
    Receiver,
    make_app,
    photo,
)
from tests.conftest import RedisDatabases
from tests.integration.conftest import WorkerProcess, wait_for

WORKER_ENV = {"CUTOUT_WEBHOOK_RETRY_SCHEDULE": "1,1,1"}  # module_worker's


@pytest.fixture(scope="module")
def api_db(redis_dbs: RedisDatabases) -> str:
    return redis_dbs.take()


@pytest.fixture(scope="module")
def app(module_db: str, s3_endpoint: str, s3_credentials: dict[str, str]) -> Flask:
    return make_app(module_db, s3_endpoint)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api_rdb(api_db: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(api_db, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def api_app(
    api_db: str, s3_endpoint: str, s3_credentials: dict[str, str], api_rdb: redis.Redis
) -> Flask:
    return make_app(api_db, s3_endpoint, max_batch_items=50)


@pytest.fixture
def api(api_app: Flask) -> FlaskClient:
    return api_app.test_client()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


def wait_completed(client: FlaskClient, batch_id: str, timeout: float = 240) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        batch = client.get(f"/v1/batches/{batch_id}", headers=AUTH_A).get_json()
        return batch if batch["status"] == "completed" else None

    return wait_for(done, timeout, 0.25)  # type: ignore[no-any-return]


def all_jobs(client: FlaskClient, batch_id: str, **params: Any) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        page = client.get(f"/v1/batches/{batch_id}/jobs", query_string=query, headers=AUTH_A)
        assert page.status_code == 200, page.get_data(as_text=True)
        body = page.get_json()
        jobs += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return jobs
    raise AssertionError("pagination does not end")


def read_zip(client: FlaskClient, batch_id: str, headers: dict[str, str] = AUTH_A) -> Any:
    response = client.get(f"/v1/batches/{batch_id}/results.zip", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/zip"
    assert response.is_streamed
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.testzip() is None
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    return archive, manifest


# -- end to end, with a worker ----------------------------------------------------------


def test_json_batch_of_urls_end_to_end(
    client: FlaskClient,
    app: Flask,
    module_worker: WorkerProcess,
    images: ImageServer,
    receiver: Receiver,
) -> None:
    """20 image_url items and one that is not an image: counts, one signed
    batch.completed, the listing, and a zip with every result and a correct manifest."""
    items: list[dict[str, Any]] = []
    for i in range(20):
        url = images.add(f"/e2e/{i}.png", photo(seed=i))
        item: dict[str, Any] = {"image_url": url, "metadata": {"sku": f"SKU-{i}"}}
        if i % 2 == 0:
            item["metadata"]["name"] = f"shoe {i}.jpg"
        items.append(item)
    items[5]["options"] = {"format": "webp"}
    items.append({"image_url": images.add("/e2e/text.png", b"not an image at all" * 10)})
    response = client.post(
        "/v1/batches",
        json={
            "items": items,
            "options": {"model": "u2netp"},
            "webhook_url": receiver.url("/batch-e2e"),
            "metadata": {"catalogue": "spring"},
        },
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    batch = response.get_json()
    assert response.headers["Location"] == f"/v1/batches/{batch['id']}"
    assert batch["counts"]["total"] == 21
    assert batch["counts"]["queued"] + batch["counts"]["processing"] <= 21
    assert batch["status"] == "running"
    assert batch["metadata"] == {"catalogue": "spring"}
    assert batch["webhook"]["status"] == "pending"

    done = wait_completed(client, batch["id"])
    review = done["counts"].pop("review")
    assert done["counts"] == {
        "total": 21,
        "queued": 0,
        "processing": 0,
        "succeeded": 20,
        "failed": 1,
        "canceled": 0,
    }
    assert done["finished_at"]

    # exactly one batch.completed, verified with the reference library
    secret = client.get("/v1/webhooks/secret", headers=AUTH_A).get_json()["secret"]
    wait_for(lambda: receiver.to("/batch-e2e"), 60)
    wait_for(
        lambda: (
            client.get(f"/v1/batches/{batch['id']}", headers=AUTH_A).get_json()["webhook"]["status"]
            == "delivered"
        ),
        30,
    )
    time.sleep(2)  # room for a duplicate to show up, were there one
    deliveries = receiver.to("/batch-e2e")
    assert len(deliveries) == 1
    payload = deliveries[0].verify(secret)
    assert payload["type"] == "batch.completed"
    assert payload["data"]["id"] == batch["id"]
    assert payload["data"]["counts"]["succeeded"] == 20
    assert payload["data"]["counts"]["failed"] == 1
    hook = client.get(f"/v1/batches/{batch['id']}", headers=AUTH_A).get_json()["webhook"]
    assert hook["attempts"] == 1
    assert hook["id"] == deliveries[0].headers["webhook-id"]

    # listing: item order, pages, status filter
    jobs = all_jobs(client, batch["id"], limit=6)
    assert [j["item_index"] for j in jobs] == list(range(21))
    assert all(j["batch_id"] == batch["id"] for j in jobs)
    assert jobs[3]["metadata"] == {"sku": "SKU-3"}
    assert jobs[5]["options"]["format"] == "webp"
    assert jobs[6]["options"]["model"] == "u2netp"
    # every cutout is scored (basic, the default); the batch counts those to review, and
    # its score index holds the succeeded jobs worst first
    scored = [j for j in jobs if j["status"] == "succeeded"]
    for job in scored:
        quality = job["result"]["quality"]
        assert 0.0 <= quality["score"] <= 1.0
        assert quality["level"] == "basic"
        assert quality["review"] == (quality["score"] < 0.85)
        assert set(quality["flags"]) <= {
            "no_subject", "tiny_subject", "several_pieces", "touches_frame",
            "uncertain_edges", "low_contrast", "models_disagree",
        }  # fmt: skip
    assert review == sum(j["result"]["quality"]["review"] for j in scored)
    worst_first = sorted(scored, key=lambda j: (j["result"]["quality"]["score"], j["id"]))
    store = app.extensions["cutout"].store
    assert store.batch_scored_ids(batch["id"]) == [j["id"] for j in worst_first]
    failed = all_jobs(client, batch["id"], status="failed", limit=3)
    assert [j["item_index"] for j in failed] == [20]
    assert failed[0]["error"]["code"] == "unsupported_format"
    assert len(all_jobs(client, batch["id"], status="succeeded,failed", limit=1000)) == 21

    # the zip: every result, named, and the manifest
    archive, manifest = read_zip(client, batch["id"])
    names = set(archive.namelist())
    assert len(names) == 21  # 20 results + manifest.csv
    assert [int(row["item_index"]) for row in manifest] == list(range(21))
    storage = app.extensions["cutout"].storage
    for row, job in zip(manifest, jobs, strict=True):
        assert row["job_id"] == job["id"]
        assert json.loads(row["metadata"]) == job["metadata"]
        index = int(row["item_index"])
        if index == 20:
            assert row["status"] == "failed"
            assert row["error_code"] == "unsupported_format"
            assert row["file"] == ""
            continue
        assert row["status"] == "succeeded"
        assert row["error_code"] == ""
        record = store.get_job(job["id"])
        assert archive.read(row["file"]) == storage.get(record.result["key"])
        if index == 5:
            assert row["file"] == f"{index:05d}_{job['id']}.webp"
        elif index % 2 == 0:
            assert row["file"] == f"shoe_{index}.png"
        else:
            assert row["file"] == f"{index:05d}_{job['id']}.png"


def test_multipart_batch_names_results_after_files(
    client: FlaskClient, module_worker: WorkerProcess
) -> None:
    files = [(io.BytesIO(photo(seed=i)), name) for i, name in enumerate(["a.png", "b.png"])]
    files.append((io.BytesIO(photo(seed=7, fmt="JPEG")), "../../dir/a.jpg"))
    response = client.post(
        "/v1/batches",
        data={"images": files, "model": "u2netp", "bg_color": "#ffffff", "metadata": '{"x": 1}'},
        content_type="multipart/form-data",
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    batch = response.get_json()
    assert batch["counts"]["total"] == 3
    assert batch["options"]["bg_color"] == "#ffffffff"
    done = wait_completed(client, batch["id"])
    assert done["counts"]["succeeded"] == 3
    archive, manifest = read_zip(client, batch["id"])
    # the same stem twice: the second gets its index
    assert [row["file"] for row in manifest] == ["a.png", "b.png", "a_00002.png"]
    assert sorted(archive.namelist()) == ["a.png", "a_00002.png", "b.png", "manifest.csv"]


def test_upload_key_batch(client: FlaskClient, module_worker: WorkerProcess) -> None:
    keys = []
    for i in range(2):
        data = photo(seed=i)
        slot = client.post("/v1/uploads", json={"bytes": len(data)}, headers=AUTH_A).get_json()[0]
        put = requests.put(slot["url"], data=data, headers=slot["headers"], timeout=30)
        assert put.status_code == 200
        keys.append(slot["upload_key"])
    response = client.post(
        "/v1/batches",
        json={"items": [{"upload_key": k} for k in keys], "options": {"model": "u2netp"}},
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    done = wait_completed(client, response.get_json()["id"])
    assert done["counts"]["succeeded"] == 2

    # tenant b may not use a's keys: the same answer as for a key that holds nothing
    other = client.post(
        "/v1/batches",
        json={"items": [{"upload_key": keys[0]}]},
        headers=AUTH_B,
    )
    body = assert_problem(other, 422, "upload_not_found")
    assert body["item"] == 0
    missing = client.post(
        "/v1/batches",
        json={"items": [{"upload_key": keys[0]}, {"upload_key": keys[0] + "x"}]},
        headers=AUTH_A,
    )
    body = assert_problem(missing, 422, "upload_not_found")
    assert body["item"] == 1


# -- the API alone (no worker on api_db) --------------------------------------------------


def test_validation_refuses_the_whole_batch_naming_the_item(
    api: FlaskClient, api_rdb: redis.Redis
) -> None:
    good = {"image_url": "https://images.example.com/a.jpg"}

    def post(body: Any) -> Any:
        return api.post("/v1/batches", json=body, headers=AUTH_A)

    assert_problem(post({"items": []}), 400, "invalid_request")
    assert_problem(post({"items": "x"}), 400, "invalid_request")
    assert_problem(post({"items": [good], "colour": 1}), 400, "invalid_request")
    assert_problem(post([good]), 400, "invalid_request")
    body = assert_problem(post({"items": [good, {}]}), 400, "invalid_request")
    assert body["item"] == 1
    body = assert_problem(
        post({"items": [good, {**good, "upload_key": "uploads/a/x"}]}), 400, "invalid_request"
    )
    assert body["item"] == 1
    body = assert_problem(post({"items": [good, good, {**good, "x": 1}]}), 400, "invalid_request")
    assert body["item"] == 2
    body = assert_problem(post({"items": [good, 5]}), 400, "invalid_request")
    assert body["item"] == 1
    body = assert_problem(
        post({"items": [good, good, good, {**good, "options": {"model": "nope"}}]}),
        422,
        "invalid_option",
    )
    assert body["item"] == 3
    assert body["option"] == "model"
    assert "items[3]" in body["detail"]
    # item options on top of the batch's: jpeg needs a bg_color from one or the other
    body = assert_problem(
        post({"items": [{**good, "options": {"format": "jpeg"}}]}), 422, "invalid_option"
    )
    assert body["item"] == 0
    ok = post(
        {"items": [{**good, "options": {"format": "jpeg"}}], "options": {"bg_color": "#ffffff"}}
    )
    assert ok.status_code == 202, ok.get_data(as_text=True)
    body = assert_problem(post({"items": [good], "options": {"model": "x"}}), 422, "invalid_option")
    assert "item" not in body
    for url, index in (("file:///etc/passwd", 0), ("http://10.1.2.3/a.png", 1)):
        items = [good] * index + [{"image_url": url}]
        body = assert_problem(post({"items": items}), 422, "url_not_allowed")
        assert body["item"] == index
    body = assert_problem(
        post({"items": [good], "webhook_url": "http://169.254.169.254/"}), 422, "url_not_allowed"
    )
    assert body["field"] == "webhook_url"
    body = assert_problem(post({"items": [{**good, "metadata": [1]}]}), 400, "invalid_request")
    assert body["item"] == 0
    # over CUTOUT_MAX_BATCH_ITEMS (50 here)
    body = assert_problem(post({"items": [good] * 51}), 413, "payload_too_large")
    assert "50" in body["detail"]
    # nothing of the refused batches was stored or queued; the one good batch was
    batch_keys = [k for k in api_rdb.keys("cutout:batch:*") if k.count(":") == 2]
    assert len(batch_keys) == 1
    assert api_rdb.llen("interactive") == 1
    assert api_rdb.llen("bulk") == 0


def test_multipart_validation(api: FlaskClient, api_rdb: redis.Redis) -> None:
    def post(files: list[Any], **fields: Any) -> Any:
        return api.post(
            "/v1/batches",
            data={"images": files, **fields},
            content_type="multipart/form-data",
            headers=AUTH_A,
        )

    body = assert_problem(
        post([(io.BytesIO(photo()), "a.png"), (io.BytesIO(b"text" * 50), "b.png")]),
        415,
        "unsupported_format",
    )
    assert body["item"] == 1
    body = assert_problem(
        post([(io.BytesIO(photo()), "a.png"), (io.BytesIO(b""), "b.png")]), 422, "invalid_image"
    )
    assert body["item"] == 1
    body = assert_problem(post([(io.BytesIO(photo()), "a.png")], model="x"), 422, "invalid_option")
    assert_problem(
        api.post(
            "/v1/batches",
            data={"image": (io.BytesIO(photo()), "a.png")},
            content_type="multipart/form-data",
            headers=AUTH_A,
        ),
        400,
        "invalid_request",
    )
    assert_problem(
        api.post("/v1/batches", data="x", content_type="text/plain", headers=AUTH_A),
        400,
        "invalid_request",
    )
    assert api_rdb.llen("interactive") == 0


def noise_png(seed: int, side: int = 80) -> bytes:
    """An incompressible PNG of about side*side*3 bytes."""
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def test_batch_body_limit_is_its_own(
    api_db: str, s3_endpoint: str, s3_credentials: dict[str, str], api_rdb: redis.Redis
) -> None:
    """A multipart batch may be larger than one image's limit, up to CUTOUT_MAX_BATCH_BYTES."""
    app = make_app(api_db, s3_endpoint, max_upload_bytes=30_000, max_batch_bytes=400_000)
    client = app.test_client()
    pictures = [noise_png(i) for i in range(8)]
    assert all(len(p) < 30_000 for p in pictures)
    assert sum(len(p) for p in pictures) > 30_000 + 64 * 1024  # over one image's allowance
    ok = client.post(
        "/v1/batches",
        data={"images": [(io.BytesIO(p), f"{i}.png") for i, p in enumerate(pictures)]},
        content_type="multipart/form-data",
        headers=AUTH_A,
    )
    assert ok.status_code == 202, ok.get_data(as_text=True)
    assert ok.get_json()["counts"]["total"] == 8
    huge = b"\x00" * (400_000 + 64 * 1024 + 1)
    assert_problem(
        client.post(
            "/v1/batches", data=huge, content_type="application/octet-stream", headers=AUTH_A
        ),
        413,
        "payload_too_large",
    )
    big_image = photo() + b"\x00" * 40_000
    body = assert_problem(
        client.post(
            "/v1/batches",
            data={"images": [(io.BytesIO(photo()), "a.png"), (io.BytesIO(big_image), "b.png")]},
            content_type="multipart/form-data",
            headers=AUTH_A,
        ),
        413,
        "payload_too_large",
    )
    assert body["item"] == 1


def test_tenants_see_only_their_batches(api: FlaskClient, api_app: Flask) -> None:
    batch = api.post(
        "/v1/batches",
        json={"items": [{"image_url": "https://images.example.com/a.jpg"}]},
        headers=AUTH_A,
    ).get_json()
    assert api.get(f"/v1/batches/{batch['id']}", headers=AUTH_A).status_code == 200
    for path in ("", "/jobs", "/results.zip"):
        assert_problem(
            api.get(f"/v1/batches/{batch['id']}{path}", headers=AUTH_B), 404, "not_found"
        )
    assert_problem(api.get("/v1/batches/bat_nothing", headers=AUTH_A), 404, "not_found")
    assert_problem(
        api.get("/v1/batches/bat_0000000000000000000000000a", headers=AUTH_A), 404, "not_found"
    )
    assert_problem(api.get(f"/v1/batches/{batch['id']}"), 401, "unauthorized")
    # the batch's job is tenant a's too
    job = all_jobs(api, batch["id"])[0]
    assert api.get(f"/v1/jobs/{job['id']}", headers=AUTH_B).status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}", headers=AUTH_A).get_json()["batch_id"] == batch["id"]


def test_listing_pages_filters_and_cursor_errors(api: FlaskClient, api_app: Flask) -> None:
    items = [{"image_url": f"https://images.example.com/{i}.jpg"} for i in range(25)]
    batch = api.post("/v1/batches", json={"items": items}, headers=AUTH_A).get_json()
    store = api_app.extensions["cutout"].store
    ids = store.batch_job_ids(batch["id"])
    # play the worker's part for a few items
    for index in (3, 7, 20):
        store.transition(ids[index], "processing", ["queued"])
        store.transition(ids[index], "failed", ["processing"], error={"code": "x", "message": "y"})
    store.transition(ids[8], "processing", ["queued"])
    counts = api.get(f"/v1/batches/{batch['id']}", headers=AUTH_A).get_json()["counts"]
    assert counts == {
        "total": 25,
        "queued": 21,
        "processing": 1,
        "succeeded": 0,
        "failed": 3,
        "canceled": 0,
        "review": 0,
    }
    first = api.get(f"/v1/batches/{batch['id']}/jobs", headers=AUTH_A).get_json()
    assert len(first["items"]) == 25
    assert first["next_cursor"] is None
    assert [j["id"] for j in first["items"]] == ids
    pages = []
    cursor = None
    while True:
        query = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = api.get(
            f"/v1/batches/{batch['id']}/jobs", query_string=query, headers=AUTH_A
        ).get_json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [j["id"] for p in pages for j in p] == ids
    failed = all_jobs(api, batch["id"], status="failed", limit=2)
    assert [j["item_index"] for j in failed] == [3, 7, 20]
    busy = all_jobs(api, batch["id"], status="processing,failed")
    assert [j["item_index"] for j in busy] == [3, 7, 8, 20]
    for query in (
        {"limit": 0},
        {"limit": 1001},
        {"limit": "x"},
        {"status": "done"},
        {"cursor": "zz"},
    ):
        assert_problem(
            api.get(f"/v1/batches/{batch['id']}/jobs", query_string=query, headers=AUTH_A),
            400,
            "invalid_request",
        )
    # a running batch's zip: no results yet, every item in the manifest
    archive, manifest = read_zip(api, batch["id"])
    assert archive.namelist() == ["manifest.csv"]
    assert [row["status"] for row in manifest].count("failed") == 3
    assert len(manifest) == 25


def test_multipart_batch_over_a_thousand_files(
    api_db: str, s3_endpoint: str, s3_credentials: dict[str, str], api_rdb: redis.Redis
) -> None:
    """werkzeug's default cap of 1000 form parts does not limit a batch, also with an
    Idempotency-Key (whose fingerprint reads the form before the view does)."""
    client = make_app(api_db, s3_endpoint, max_batch_items=2000).test_client()
    tiny = photo((8, 8))
    response = client.post(
        "/v1/batches",
        data={"images": [(io.BytesIO(tiny), f"{i}.png") for i in range(1005)]},
        content_type="multipart/form-data",
        headers={**AUTH_A, "Idempotency-Key": "many-files-1"},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["counts"]["total"] == 1005


def test_many_upload_keys_are_checked_by_listing(
    api_db: str, s3_endpoint: str, s3_credentials: dict[str, str], api_rdb: redis.Redis
) -> None:
    """Over LIST_ABOVE keys the API lists the tenant's uploads instead of one HEAD each:
    the same answers (missing, too large, another tenant's) with the item's index."""
    from api.batches.writes import LIST_ABOVE
    from shared.ids import new_id
    from shared.s3.storage import upload_key

    api_app = make_app(api_db, s3_endpoint, max_upload_bytes=5000)
    api = api_app.test_client()
    storage = api_app.extensions["cutout"].storage
    count = LIST_ABOVE + 5
    keys = [upload_key("a", new_id("upl")) for _ in range(count)]
    for key in keys:
        storage.put(key, photo((8, 8)), "image/png")
    theirs = upload_key("b", new_id("upl"))
    storage.put(theirs, photo((8, 8)), "image/png")
    big = upload_key("a", new_id("upl"))
    storage.put(big, b"\x00" * 5001, "image/png")

    def post(batch_keys: list[str], headers: dict[str, str] = AUTH_A) -> Any:
        items = [{"upload_key": key} for key in batch_keys]
        return api.post("/v1/batches", json={"items": items}, headers=headers)

    ok = post(keys)
    assert ok.status_code == 202, ok.get_data(as_text=True)
    assert ok.get_json()["counts"]["total"] == count
    missing = upload_key("a", new_id("upl"))
    for bad, status, code in (
        (missing, 422, "upload_not_found"),
        (theirs, 422, "upload_not_found"),
        (big, 413, "payload_too_large"),
    ):
        body = assert_problem(post([*keys[:7], bad, *keys[7:]]), status, code)
        assert body["item"] == 7
    # tenant b listing its own prefix finds none of a's keys
    body = assert_problem(post(keys, AUTH_B), 422, "upload_not_found")
    assert body["item"] == 0


def test_canceling_the_last_items_completes_the_batch_and_announces_it(
    api: FlaskClient, api_rdb: redis.Redis
) -> None:
    # no worker consumes this database: the items stay queued until canceled
    batch = api.post(
        "/v1/batches",
        json={
            "items": [{"image_url": f"https://images.example.com/{i}.jpg"} for i in range(3)],
            "webhook_url": "https://hooks.example.com/cutout",
        },
        headers=AUTH_A,
    ).get_json()
    jobs = all_jobs(api, batch["id"])
    for job in jobs:
        assert api.delete(f"/v1/jobs/{job['id']}", headers=AUTH_A).status_code == 204
    done = api.get(f"/v1/batches/{batch['id']}", headers=AUTH_A).get_json()
    assert done["status"] == "completed"
    assert done["counts"]["canceled"] == 3
    # exactly one announcement, by the cancel that finished the batch, for a worker to send
    messages = [json.loads(raw) for raw in api_rdb.lrange("webhooks", 0, -1)]
    announced = [m for m in messages if m["headers"]["task"] == "cutout.announce_finished"]
    assert len(announced) == 1
    assert jobs[-1]["id"] in announced[0]["headers"]["argsrepr"]
