"""The quality score wherever the API reports a cutout (issue 26): a batch's review list
and worst-first order, ``results.zip``'s manifest columns, the ``job.succeeded`` webhook,
and the headers of the routes that answer the image itself.

The API in-process (Flask test client) on the session's Redis database, processed by the
session's shared `cutout worker` (``worker``: u2netp and u2net, one at a time), so this
module starts no worker of its own; real SeaweedFS; a local image server and webhook
receiver on 127.0.0.1. Items use u2netp (its scores are as deterministic as u2net's).
What makes a score low is the picture: an all-grey image has no subject (``no_subject``,
score 0, to review); a large clear disc on a plain backdrop scores well above the
threshold.
"""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from standardwebhooks.webhooks import Webhook

from api.batches import pages
from shared.ids import new_id, now_iso
from testkit.batch import AUTH_A, ImageServer, Receiver, make_app, photo
from tests.integration.conftest import WorkerProcess, wait_for

OLD_COLUMNS = ["item_index", "job_id", "status", "error_code", "error_message", "file", "metadata"]
QUALITY_HEADERS = ("Cutout-Score", "Cutout-Review", "Cutout-Flags", "Cutout-Score-Level")


def blank(size: tuple[int, int] = (96, 72)) -> bytes:
    """One grey everywhere: nothing to cut out."""
    out = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def app(redis_url: str, s3_endpoint: str, s3_credentials: dict[str, str]) -> Flask:
    return make_app(redis_url, s3_endpoint)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def listing(client: FlaskClient, batch_id: str, **params: Any) -> Any:
    return client.get(f"/v1/batches/{batch_id}/jobs", query_string=params, headers=AUTH_A)


def every_page(client: FlaskClient, batch_id: str, **params: Any) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = listing(client, batch_id, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.get_data(as_text=True)
        jobs += page.get_json()["items"]
        cursor = page.get_json()["next_cursor"]
        if cursor is None:
            return jobs
    raise AssertionError("pagination does not end")


def refused(response: Any, field: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json(force=True)
    assert body["code"] == "invalid_request"
    assert body["field"] == field, body


@pytest.fixture(scope="module")
def scored_batch(
    client: FlaskClient, worker: WorkerProcess, images: ImageServer
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A completed batch: grey (no subject), a small disc, a large disc, a large disc at
    another colour, a text file (fails), a small disc again; its jobs in item order."""
    pictures = [
        blank(),
        photo(seed=0),
        photo((320, 240), seed=1),
        photo((320, 240), seed=2),
        b"not an image at all\n" * 10,
        photo(seed=3),
    ]
    items = [{"image_url": images.add(f"/q/{i}", data)} for i, data in enumerate(pictures)]
    response = client.post(
        "/v1/batches", json={"items": items, "options": {"model": "u2netp"}}, headers=AUTH_A
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    batch_id = response.get_json()["id"]

    def completed() -> dict[str, Any] | None:
        batch = client.get(f"/v1/batches/{batch_id}", headers=AUTH_A).get_json()
        return batch if batch["status"] == "completed" else None

    batch = wait_for(completed, 240, 0.25)
    return batch, every_page(client, batch_id)


def test_review_filter_and_worst_first_order(
    client: FlaskClient, scored_batch: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    batch, jobs = scored_batch
    assert [j["status"] for j in jobs] == ["succeeded"] * 4 + ["failed", "succeeded"]
    scored = [j for j in jobs if j["status"] == "succeeded"]
    quality = {j["id"]: j["result"]["quality"] for j in scored}
    grey, big = jobs[0]["result"]["quality"], jobs[2]["result"]["quality"]
    # what makes the list: the grey picture has nothing to cut out, the large disc is clear
    assert grey["score"] == 0
    assert "no_subject" in grey["flags"]
    assert grey["review"] is True
    assert big["review"] is False
    assert big["score"] > grey["score"]
    to_review = [j["id"] for j in scored if quality[j["id"]]["review"]]
    assert batch["counts"]["review"] == len(to_review)

    # review=true: exactly the jobs to look at, in item order, a page of one at a time
    assert [j["id"] for j in every_page(client, batch["id"], review="true", limit=1)] == to_review
    passed = [j["id"] for j in scored if not quality[j["id"]]["review"]]
    assert passed
    assert [j["id"] for j in every_page(client, batch["id"], review="false")] == passed
    # the failed job has no score: it matches neither, whatever its status filter says
    assert every_page(client, batch["id"], review="true", status="failed") == []
    assert every_page(client, batch["id"], review="false", status="failed") == []

    # order=score: the scored succeeded jobs, worst first (ties by id), across pages of 2
    worst_first = sorted(scored, key=lambda j: (j["result"]["quality"]["score"], j["id"]))
    ordered = every_page(client, batch["id"], order="score", limit=2)
    assert [j["id"] for j in ordered] == [j["id"] for j in worst_first]
    assert ordered[0]["id"] == jobs[0]["id"]
    assert ordered == worst_first  # the same job objects as the item-order listing
    # the review list, worst first; filters and order combine
    assert [j["id"] for j in every_page(client, batch["id"], order="score", review="true")] == [
        j["id"] for j in worst_first if j["result"]["quality"]["review"]
    ]
    assert every_page(client, batch["id"], order="score", status="failed") == []
    whole = listing(client, batch["id"], order="score", limit=len(scored)).get_json()
    assert len(whole["items"]) == len(scored)
    assert whole["next_cursor"] is None


def test_cursors_belong_to_their_order_and_bad_values_are_named(
    client: FlaskClient, scored_batch: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    batch, _jobs = scored_batch
    by_item = listing(client, batch["id"], limit=2).get_json()["next_cursor"]
    by_score = listing(client, batch["id"], order="score", limit=2).get_json()["next_cursor"]
    assert by_item
    assert by_score
    refused(listing(client, batch["id"], order="score", cursor=by_item), "cursor")
    refused(listing(client, batch["id"], cursor=by_score), "cursor")
    refused(listing(client, batch["id"], order="item", cursor=by_score), "cursor")
    # each still works with its own order
    assert listing(client, batch["id"], order="score", cursor=by_score).status_code == 200
    assert listing(client, batch["id"], order="item", cursor=by_item).status_code == 200
    refused(listing(client, batch["id"], order="score", cursor="c2pvYl9ub3Rfb25l"), "cursor")
    refused(listing(client, batch["id"], review="maybe"), "review")
    refused(listing(client, batch["id"], order="worst"), "order")


def test_manifest_gains_score_review_and_flags(
    client: FlaskClient, scored_batch: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    batch, jobs = scored_batch
    response = client.get(f"/v1/batches/{batch['id']}/results.zip", headers=AUTH_A)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    text = archive.read("manifest.csv").decode()
    assert text.splitlines()[0].split(",") == [
        *OLD_COLUMNS, "score", "review", "flags", "version"
    ]  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["job_id"] for row in rows] == [j["id"] for j in jobs]
    for row, job in zip(rows, jobs, strict=True):
        quality = (job.get("result") or {}).get("quality")
        if quality is None:
            assert job["status"] == "failed"
            assert (row["score"], row["review"], row["flags"]) == ("", "", "")
            continue
        assert float(row["score"]) == quality["score"]
        assert row["review"] == ("true" if quality["review"] else "false")
        assert row["flags"].split() == quality["flags"]
    assert "no_subject" in rows[0]["flags"].split()


def test_job_succeeded_webhook_carries_the_quality(
    client: FlaskClient, worker: WorkerProcess, receiver: Receiver
) -> None:
    secret = client.get("/v1/webhooks/secret", headers=AUTH_A).get_json()["secret"]
    response = client.post(
        "/v1/jobs",
        data={
            "image": (io.BytesIO(blank()), "grey.png"),
            "model": "u2netp",
            "score": "full",
            "webhook_url": receiver.url("/quality-hook"),
        },
        content_type="multipart/form-data",
        headers=AUTH_A,
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["id"]
    delivery = wait_for(lambda: receiver.to("/quality-hook") or None, 120, 0.2)[0]
    payload = Webhook(secret).verify(delivery.body, delivery.headers)
    assert payload["type"] == "job.succeeded"
    job = client.get(f"/v1/jobs/{job_id}", headers=AUTH_A).get_json()
    quality = payload["data"]["result"]["quality"]
    assert quality == job["result"]["quality"]
    assert quality["level"] == "full"
    assert quality["review"] is True
    assert quality["score"] == 0
    assert "no_subject" in quality["flags"]


def assert_quality_headers(headers: Any, quality: dict[str, Any]) -> None:
    assert float(headers["Cutout-Score"]) == quality["score"]
    assert headers["Cutout-Review"] == ("true" if quality["review"] else "false")
    assert headers["Cutout-Flags"].split() == quality["flags"]
    assert headers["Cutout-Score-Level"] == quality["level"]
    exposed = {name.strip() for name in headers["Access-Control-Expose-Headers"].split(",")}
    assert set(QUALITY_HEADERS) <= exposed


def test_image_answers_carry_the_score_in_headers(
    client: FlaskClient, worker: WorkerProcess
) -> None:
    """/api/remove, /v1.0/removebg (both forms) and GET /v1/jobs/{id}/result."""
    picture = photo((320, 240), seed=4)
    answer = client.post(
        "/api/remove",
        data={"file": (io.BytesIO(picture), "p.png"), "model": "u2netp", "score": "full"},
        content_type="multipart/form-data",
        headers=AUTH_A,
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    job = client.get(f"/v1/jobs/{answer.headers['Cutout-Job-Id']}", headers=AUTH_A).get_json()
    assert job["result"]["quality"]["level"] == "full"
    assert_quality_headers(answer.headers, job["result"]["quality"])
    result = client.get(f"/v1/jobs/{job['id']}/result", headers=AUTH_A)
    assert result.status_code == 200
    assert result.get_data() == answer.get_data()
    assert_quality_headers(result.headers, job["result"]["quality"])

    # remove.bg's image answer with the default level; its JSON answer with ours, full
    for accept, level in (("image/*", "basic"), ("application/json", "full")):
        fields = {"image_file": (io.BytesIO(picture), "p.png"), "model": "u2netp"}
        answer = client.post(
            "/v1.0/removebg",
            data={**fields, **({"score": level} if level == "full" else {})},
            content_type="multipart/form-data",
            headers={"X-Api-Key": AUTH_A["Authorization"].split()[1], "Accept": accept},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        job_id = answer.headers["Cutout-Job-Id"]
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH_A).get_json()
        assert job["result"]["quality"]["level"] == level
        assert_quality_headers(answer.headers, job["result"]["quality"])
        if accept == "application/json":  # remove.bg's schema, nothing added
            assert set(answer.get_json()["data"]) == {
                "result_b64", "foreground_top", "foreground_left", "foreground_width",
                "foreground_height",
            }  # fmt: skip


def test_score_option_is_checked_on_both_compatible_routes(client: FlaskClient) -> None:
    """Refused before any job exists: remove.bg's shape names the parameter."""
    answer = client.post(
        "/v1.0/removebg",
        data={"image_file": (io.BytesIO(photo()), "p.png"), "score": "best"},
        content_type="multipart/form-data",
        headers={"X-Api-Key": AUTH_A["Authorization"].split()[1]},
    )
    assert answer.status_code == 400
    error = answer.get_json()["errors"][0]
    assert error["code"] == "invalid_option"
    assert error["source"] == {"parameter": "score"}
    answer = client.post(
        "/api/remove",
        data={"file": (io.BytesIO(photo()), "p.png"), "score": "best"},
        content_type="multipart/form-data",
        headers=AUTH_A,
    )
    assert answer.status_code == 422
    assert answer.get_json()["code"] == "invalid_option"


def test_score_cursor_resumes_after_its_job_while_scores_arrive(store: Any) -> None:
    """On a running batch, worse scores entering the order ahead of a cursor neither
    repeat a job on the next page nor shift it: the page starts right after the cursor's
    job (the store's own records and score index on the real Redis, no worker)."""
    batch_id = new_id("bat")
    jobs: list[dict[str, Any]] = [
        {"id": new_id("job"), "tenant": "t1", "status": "queued", "created_at": now_iso(),
         "options": {}, "metadata": {}, "attempts": 0, "batch_id": batch_id, "webhook": None}
        for _ in range(6)
    ]  # fmt: skip
    store.create_batch(
        {"id": batch_id, "tenant": "t1", "status": "running", "created_at": now_iso()},
        total=len(jobs),
    )
    store.add_batch_jobs(batch_id, jobs)

    def succeed(job: dict[str, Any], score: float) -> None:
        quality = {"score": score, "flags": [], "review": score < 0.85, "level": "basic"}
        result = {"url": "u", "key": "k", "content_type": "image/png", "width": 1,
                  "height": 1, "bytes": 1, "subject": None, "foreground": None,
                  "quality": quality}  # fmt: skip
        store.transition(job["id"], "processing", ("queued",))
        store.transition(
            job["id"], "succeeded", ("processing",), result=result,
            _score=score, _review=int(score < 0.85),
        )  # fmt: skip

    def listed(**args: str) -> tuple[list[str], str | None]:
        page = pages.page(store, store.get_batch(batch_id), args)
        return [j["id"] for j in page["items"]], page["next_cursor"]

    for job, score in zip(jobs[:3], (0.5, 0.7, 0.9), strict=True):
        succeed(job, score)
    first, cursor = listed(order="score", limit="2")
    assert first == [jobs[0]["id"], jobs[1]["id"]]
    assert cursor is not None
    succeed(jobs[3], 0.1)  # enters ahead of the cursor
    succeed(jobs[4], 0.8)  # enters after it
    rest, end = listed(order="score", limit="2", cursor=cursor)
    assert rest == [jobs[4]["id"], jobs[2]["id"]]
    assert end is None
    # listed again from the start: the whole order; and the review list, worst first
    assert listed(order="score")[0] == [jobs[i]["id"] for i in (3, 0, 1, 4, 2)]
    assert listed(order="score", review="true")[0] == [jobs[i]["id"] for i in (3, 0, 1, 4)]
    assert listed(review="false")[0] == [jobs[2]["id"]]
